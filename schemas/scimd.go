package schemas

import (
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// ScimdUserURN is scimd's own User extension.
const ScimdUserURN = "urn:scimd:schemas:extension:2.0:User"

// ScimdUser is scimd's own User extension: the API credits and the email verification
// state that the compatibility routes keep on a user. Like any extension it is served
// at /Schemas and readable and filterable through SCIM.
func ScimdUser() schema.Schema {
	return schema.Schema{
		ID:          ScimdUserURN,
		Name:        optional.NewString("scimd User"),
		Description: optional.NewString("Account state kept by scimd's compatibility routes"),
		Attributes: []schema.CoreAttribute{
			schema.SimpleCoreAttribute(schema.SimpleNumberParams(schema.NumberParams{
				Description: optional.NewString("API credits of the user's account (0 or more)."),
				Name:        "credits",
				Type:        schema.AttributeTypeInteger(),
			})),
			schema.SimpleCoreAttribute(schema.SimpleBooleanParams(schema.BooleanParams{
				Description: optional.NewString("Whether the user has confirmed their email address."),
				Name:        "emailVerified",
			})),
		},
	}
}
