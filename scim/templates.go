package scim

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/scimd/scimd/store"
)

// MessageTemplate is a tenant's override of one message kind's templates.
type MessageTemplate = store.MessageTemplate

// MessageKinds lists the message kinds there are templates for.
var MessageKinds = []string{MessageSetPassword, MessageInvitation, MessageVerifyEmail}

// MaxTemplateBytes bounds each part of a template override.
const MaxTemplateBytes = 64 << 10

// TemplateEdit changes a tenant's override of one message kind: a nil field keeps
// its value, an empty one returns that part to the built-in template, and Reset
// drops the whole override first.
type TemplateEdit struct {
	Subject, Text, HTML *string
	Reset               bool
}

// EditTemplate applies e to the named tenant's override of kind, has check vet the
// result (it must parse and render), and saves it. It returns the override now in
// force; the zero value means the built-in templates.
func (t *Tokens) EditTemplate(ctx context.Context, tenant, kind string, e TemplateEdit, check func(kind string, mt MessageTemplate) error) (MessageTemplate, error) {
	if !slices.Contains(MessageKinds, kind) {
		return MessageTemplate{}, errorf(KindInvalidValue, "message kind %q: use one of %s", kind, strings.Join(MessageKinds, ", "))
	}
	tn, err := tenantNamed(ctx, t.st, tenant)
	if err != nil {
		return MessageTemplate{}, err
	}
	set := tn.Settings
	mt := set.Templates[kind]
	if e.Reset {
		mt = MessageTemplate{}
	}
	for _, p := range []struct {
		name string
		src  *string
		dst  *string
	}{{"subject", e.Subject, &mt.Subject}, {"text", e.Text, &mt.Text}, {"html", e.HTML, &mt.HTML}} {
		if p.src == nil {
			continue
		}
		if len(*p.src) > MaxTemplateBytes {
			return MessageTemplate{}, errorf(KindInvalidValue, "%s template of %s: longer than %d bytes", p.name, kind, MaxTemplateBytes)
		}
		*p.dst = *p.src
	}
	if mt != (MessageTemplate{}) && check != nil {
		if err := check(kind, mt); err != nil {
			return MessageTemplate{}, &Error{Kind: KindInvalidValue, Detail: fmt.Sprintf("template of %s refused", kind), Err: err}
		}
	}
	// Copy the map: the tenant value may be shared with a cache.
	tpl := make(map[string]MessageTemplate, len(set.Templates)+1)
	for k, v := range set.Templates {
		tpl[k] = v
	}
	if mt == (MessageTemplate{}) {
		delete(tpl, kind)
	} else {
		tpl[kind] = mt
	}
	if len(tpl) == 0 {
		tpl = nil
	}
	set.Templates = tpl
	if err := t.st.SetTenantSettings(ctx, tn.ID, set); err != nil {
		return MessageTemplate{}, AsError(err)
	}
	t.forgetAll()
	return mt, nil
}
