package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client sends SCIM requests to one base URL (ending in /scim/v2) with a bearer token.
type client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(base, token string, conns int, timeout time.Duration) *client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &client{base: strings.TrimRight(base, "/"), token: token, hc: &http.Client{Transport: tr, Timeout: timeout}}
}

// maxBody bounds how much of one answer is read.
const maxBody = 512 << 20

// do sends one request and returns the status and body. A transport failure is an
// error; a status is left to the caller to judge.
func (c *client) do(ctx context.Context, method, path string, q url.Values, body any, hdr ...string) (int, []byte, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/scim+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, b, nil
}

// doURL sends a request without a body to an absolute URL of the server.
func (c *client) doURL(ctx context.Context, method, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, b, err
}

// expect sends a request and decodes a JSON answer into out (when not nil), failing
// unless the status is want.
func (c *client) expect(ctx context.Context, want int, method, path string, q url.Values, body, out any, hdr ...string) error {
	st, b, err := c.do(ctx, method, path, q, body, hdr...)
	if err != nil {
		return err
	}
	if st != want {
		return fmt.Errorf("%s %s: status %d, want %d: %.200s", method, path, st, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: undecodable body: %v", method, path, err)
		}
	}
	return nil
}

// resource is the part of a SCIM resource the scenarios check.
type resource struct {
	ID       string           `json:"id"`
	UserName string           `json:"userName"`
	Active   *bool            `json:"active"`
	Members  *json.RawMessage `json:"members"`
	Groups   []struct {
		Value string `json:"value"`
	} `json:"groups"`
}

// listResponse is a SCIM ListResponse (RFC 7644 §3.4.2, RFC 9865).
type listResponse struct {
	Schemas      []string   `json:"schemas"`
	TotalResults *int       `json:"totalResults"`
	ItemsPerPage int        `json:"itemsPerPage"`
	StartIndex   int        `json:"startIndex"`
	NextCursor   string     `json:"nextCursor"`
	Resources    []resource `json:"Resources"`
}

const (
	schemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaPatch      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

var departments = []string{"Engineering", "Sales", "Finance", "Support", "Tour Operations", "Legal", "Marketing", "Research"}

// userDoc is a realistic user as an identity provider sends it, with the enterprise
// extension.
func userDoc(runID string, i int) map[string]any {
	given, family := fmt.Sprintf("Given%d", i), fmt.Sprintf("Family%d", i)
	mail := userName(runID, i)
	return map[string]any{
		"schemas":     []string{schemaUser, schemaEnterprise},
		"userName":    mail,
		"externalId":  fmt.Sprintf("00u%s%07d", runID, i),
		"name":        map[string]any{"givenName": given, "familyName": family, "formatted": given + " " + family},
		"displayName": given + " " + family,
		"title":       "Engineer",
		"locale":      "en-US",
		"timezone":    "Europe/Berlin",
		"active":      true,
		"emails": []map[string]any{
			{"value": mail, "type": "work", "primary": true},
			{"value": fmt.Sprintf("home%d@example.org", i), "type": "home"},
		},
		"phoneNumbers": []map[string]any{{"value": fmt.Sprintf("+49 30 %07d", i), "type": "work"}},
		"addresses": []map[string]any{{
			"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
			"region": "CA", "postalCode": "91608", "country": "US", "primary": true,
		}},
		schemaEnterprise: map[string]any{
			"employeeNumber": fmt.Sprintf("%07d", i),
			"costCenter":     fmt.Sprintf("CC%03d", i%500),
			"organization":   "Example Corp",
			"division":       "Operations",
			"department":     departments[i%len(departments)],
		},
	}
}

func userName(runID string, i int) string {
	return fmt.Sprintf("user%07d.%s@example.com", i, runID)
}

func patchOp(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{schemaPatch}, "Operations": ops}
}

func memberValues(ids []string) []map[string]any {
	out := make([]map[string]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"value": id}
	}
	return out
}
