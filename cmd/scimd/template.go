package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/scimd/scimd/scim"
	scimmail "github.com/scimd/scimd/scim/mail"
)

const templateUsage = "usage: scimd tenant template NAME KIND [--subject TEMPLATE] [--text FILE] [--html FILE] [--reset]"

// tenantTemplateCmd changes a tenant's override of one message kind's templates.
// The override is checked (it must parse and render with sample data) before it
// is saved; it prints the override now in force as JSON, {} for the built-in one.
func tenantTemplateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") || strings.HasPrefix(args[1], "-") {
		return fmt.Errorf("%s\n  KIND is one of %s", templateUsage, strings.Join(scim.MessageKinds, ", "))
	}
	name, kind := args[0], args[1]
	var c Config
	var subject, textFile, htmlFile string
	var reset bool
	fs := flag.NewFlagSet("tenant template", flag.ContinueOnError)
	databaseFlags(fs, &c)
	fs.StringVar(&subject, "subject", "", `subject line, a text/template such as "Welcome to {{.Tenant}}" ("" returns to the built-in one)`)
	fs.StringVar(&textFile, "text", "", `file with the plain-text body, a text/template ("" returns to the built-in one)`)
	fs.StringVar(&htmlFile, "html", "", `file with the HTML body, an html/template ("" returns to the built-in one)`)
	fs.BoolVar(&reset, "reset", false, "drop the tenant's override of KIND first: the built-in templates apply again")
	st, _, err := setup(ctx, fs, &c, args[2:], false, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	e := scim.TemplateEdit{Reset: reset}
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "subject":
			e.Subject = &subject
		case "text", "html":
			s := ""
			if f.Value.String() != "" {
				b, err := os.ReadFile(f.Value.String())
				if err != nil {
					errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
					return
				}
				s = string(b)
			}
			if f.Name == "text" {
				e.Text = &s
			} else {
				e.HTML = &s
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	mt, err := scim.NewTokens(st).EditTemplate(ctx, name, kind, e, scimmail.CheckTemplate)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(mt)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}
