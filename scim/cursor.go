package scim

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/scimd/scimd/store"
)

// cursorSecret names the server-wide key that signs cursors.
const cursorSecret = "cursor-hmac"

// cursor is what a cursor (RFC 9865) carries: where the page starts, for which tenant,
// resource type and query, until when. It is signed, so a client can neither forge
// nor alter one, nor use it on another tenant or another query.
type cursor struct {
	V       int    `json:"v"`
	Tenant  string `json:"t"`
	Kind    string `json:"k"`
	Query   string `json:"q"`
	Back    bool   `json:"b,omitempty"`
	Created string `json:"c,omitempty"`
	Null    bool   `json:"n,omitempty"`
	Value   string `json:"x,omitempty"`
	ID      string `json:"i"`
	Expires int64  `json:"e"`
	// Total is the walk's totalResults as its first page counted it, carried so
	// that later pages of a filtered walk do not count the matches again; 0
	// (absent) in cursors of unfiltered lists, whose totals are kept by counters.
	Total int `json:"r,omitempty"`
}

// queryHash binds a cursor to the filter and order it was made for.
func queryHash(q ListQuery) string {
	h := sha256.Sum256([]byte(q.Filter + "\x00" + strings.ToLower(strings.TrimSpace(q.SortBy)) + "\x00" + strings.ToLower(q.SortOrder)))
	return base64.RawURLEncoding.EncodeToString(h[:12])
}

func (s *Service) cursorKey(ctx context.Context) ([]byte, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	k, err := s.st.Secret(ctx, cursorSecret)
	if err != nil {
		return nil, AsError(err)
	}
	s.key = k
	return k, nil
}

func sign(key, payload []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *Service) encodeCursor(ctx context.Context, tenantID string, kind ResourceKind, q ListQuery, p store.Position, back bool, total int) (string, error) {
	key, err := s.cursorKey(ctx)
	if err != nil {
		return "", err
	}
	c := cursor{V: 1, Tenant: tenantID, Kind: string(kind), Query: queryHash(q), Back: back, Null: p.Null, Value: p.Value, ID: p.ID,
		Expires: time.Now().Add(s.limits.CursorTimeout).Unix()}
	if q.Filter != "" {
		c.Total = total
	}
	if !p.Created.IsZero() {
		c.Created = p.Created.UTC().Format(time.RFC3339Nano)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return "", AsError(err)
	}
	return sign(key, raw), nil
}

// decodeCursor checks a cursor's signature, tenant, resource type, query and age,
// and returns the page it asks for and the walk's total (nil when it carries none).
func (s *Service) decodeCursor(ctx context.Context, tenantID string, kind ResourceKind, q ListQuery, raw string) (*store.Seek, *int, error) {
	key, err := s.cursorKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	bad := errorf(KindInvalidCursor, "the cursor is not one this server issued for this query; start again without one")
	body, mac, ok := strings.Cut(raw, ".")
	if !ok {
		return nil, nil, bad
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(body)
	sum, err2 := base64.RawURLEncoding.DecodeString(mac)
	if err1 != nil || err2 != nil {
		return nil, nil, bad
	}
	m := hmac.New(sha256.New, key)
	m.Write(payload)
	if !hmac.Equal(sum, m.Sum(nil)) {
		return nil, nil, bad
	}
	var c cursor
	if err := json.Unmarshal(payload, &c); err != nil || c.V != 1 || c.Tenant != tenantID || c.Kind != string(kind) || c.Query != queryHash(q) {
		return nil, nil, bad
	}
	if time.Now().Unix() > c.Expires {
		return nil, nil, errorf(KindExpiredCursor, "the cursor expired; start again without one (cursors last %s)", s.limits.CursorTimeout)
	}
	p := store.Position{Null: c.Null, Value: c.Value, ID: c.ID}
	if c.Created != "" {
		t, err := time.Parse(time.RFC3339Nano, c.Created)
		if err != nil {
			return nil, nil, bad
		}
		p.Created = t
	}
	var total *int
	if c.Total > 0 {
		total = &c.Total
	}
	return &store.Seek{After: &p, Backward: c.Back}, total, nil
}

// cursors returns the next and previous cursors of a keyset page (RFC 9865 §2).
func (s *Service) cursors(ctx context.Context, tenantID string, kind ResourceKind, q ListQuery, seek *store.Seek, res store.ListResult) (next, prev string, err error) {
	n := len(res.Positions)
	// There is a next page when the store saw one more row forward, or when this
	// page was reached going backward (the page we came from follows it).
	if n > 0 && (res.More && !seek.Backward || seek.Backward) {
		if next, err = s.encodeCursor(ctx, tenantID, kind, q, res.Positions[n-1], false, res.Total); err != nil {
			return "", "", err
		}
	}
	// There is a previous page when this one started after a position going
	// forward, or when the store saw more rows going backward.
	if n > 0 && (seek.After != nil && !seek.Backward || res.More && seek.Backward) {
		prev, err = s.encodeCursor(ctx, tenantID, kind, q, res.Positions[0], true, res.Total)
	}
	return next, prev, err
}
