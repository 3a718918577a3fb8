package scimhttp

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
	"github.com/scimd/scimd/store"
)

// Prefix is where the SCIM API is mounted.
const Prefix = "/scim/v2"

// Server is the SCIM HTTP API.
type Server struct {
	svc     *scim.Service
	log     *zap.Logger
	baseURL string // absolute URL of Prefix, or "" to derive it from each request
	maxBody int64
	mux     *http.ServeMux

	routeList []string // "METHOD pattern" of every route, for Routes

	bulkMaxOps  int          // most operations in one bulk request
	bulkMaxBody int64        // largest bulk request body
	sub         http.Handler // runs one bulk operation through s.mux
}

// Options configure a Server.
type Options struct {
	// BaseURL is the public URL scimd is reached at (e.g. https://id.example.com);
	// meta.location and Location are built from it. Empty: from the request's Host.
	BaseURL string
	// MaxBodyBytes bounds request bodies; larger ones are 413.
	MaxBodyBytes int64
	// BulkMaxOperations bounds the operations of one bulk request; more are 413
	// (RFC 7644 §3.7.4). Zero: DefaultBulkMaxOperations.
	BulkMaxOperations int
	// BulkMaxPayloadBytes bounds the body of a bulk request; larger ones are 413. Zero:
	// DefaultBulkMaxPayloadBytes; never below MaxBodyBytes.
	BulkMaxPayloadBytes int64
	// RequestTimeout bounds how long one request may take, database work
	// included; past it the request is answered 503 with Retry-After. Zero: no
	// bound (the HTTP server's write timeout still applies). New does not apply
	// it: the bound covers every route family, so the caller wraps the whole
	// handler with middleware.Deadline(RequestTimeout).
	RequestTimeout time.Duration
}

// New returns the SCIM API handler: it authenticates every request with authn and
// requires the scim scope.
func New(svc *scim.Service, authn auth.Authenticator, log *zap.Logger, o Options) http.Handler {
	s := &Server{svc: svc, log: log.Named("scimhttp"), baseURL: strings.TrimRight(o.BaseURL, "/"), maxBody: o.MaxBodyBytes, mux: http.NewServeMux()}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	s.bulkMaxOps, s.bulkMaxBody = o.BulkMaxOperations, o.BulkMaxPayloadBytes
	if s.bulkMaxOps <= 0 {
		s.bulkMaxOps = DefaultBulkMaxOperations
	}
	if s.bulkMaxBody <= 0 {
		s.bulkMaxBody = DefaultBulkMaxPayloadBytes
	}
	s.bulkMaxBody = max(s.bulkMaxBody, s.maxBody)
	s.sub = middleware.Recover(s.log, s.writeError)(s.mux)
	s.routes()
	var h http.Handler = s.mux
	h = middleware.NotePrincipal(h)
	h = s.sandboxReadOnly(h)
	h = auth.Require(authn, scim.ScopeSCIM, s.writeError)(h)
	h = s.limitBody(h)
	h = s.markChange(h)
	h = middleware.Recover(s.log, s.writeError)(h)
	return h
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// sandboxReadOnly refuses a sandbox token every request that may change data
// (403): POST, PUT, PATCH and DELETE anywhere under the prefix, Bulk and /Me
// included, except the searches (POST …/.search, RFC 7644 §3.4.3), which only read.
func (s *Server) sandboxReadOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read := r.Method == http.MethodGet || r.Method == http.MethodHead ||
			r.Method == http.MethodPost && strings.HasSuffix(strings.TrimSuffix(r.URL.Path, "/"), "/.search")
		if !read {
			p, _ := auth.FromContext(r.Context())
			if err := p.MayChange(); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// methods routes one path by method and answers any other method with 405 and Allow.
func (s *Server) methods(pattern string, m map[string]handlerFunc) {
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	allowed := strings.Join(sortStrings(allow), ", ")
	for _, m := range allow {
		s.routeList = append(s.routeList, m+" "+pattern)
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		h, ok := m[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = m[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", allowed)
			s.writeError(w, r, &httpError{status: http.StatusMethodNotAllowed, detail: r.Method + " is not allowed here; use " + allowed})
			return
		}
		q := scim.NewQuirks(principalProfile(r))
		r = r.WithContext(scim.WithQuirks(r.Context(), q))
		err := h(w, r)
		s.noteQuirks(r, q)
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

func sortStrings(xs []string) []string {
	for i := 1; i < len(xs); i++ {
		for j := i; j > 0 && xs[j] < xs[j-1]; j-- {
			xs[j], xs[j-1] = xs[j-1], xs[j]
		}
	}
	return xs
}

func (s *Server) routes() {
	p := Prefix
	s.methods(p+"/ServiceProviderConfig", map[string]handlerFunc{"GET": s.serviceProviderConfig})
	s.methods(p+"/ResourceTypes", map[string]handlerFunc{"GET": s.resourceTypes})
	s.methods(p+"/ResourceTypes/{id}", map[string]handlerFunc{"GET": s.resourceType})
	s.methods(p+"/Schemas", map[string]handlerFunc{"GET": s.schemaList})
	s.methods(p+"/Schemas/{id}", map[string]handlerFunc{"GET": s.schema})
	for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
		ep := p + s.svc.Types().Of(kind).Endpoint
		s.methods(ep, map[string]handlerFunc{"GET": s.list([]scim.ResourceKind{kind}), "POST": s.create(kind)})
		s.methods(ep+"/{id}", map[string]handlerFunc{"GET": s.get(kind), "PUT": s.replace(kind), "PATCH": s.patch(kind), "DELETE": s.delete(kind)})
		s.methods(ep+"/.search", map[string]handlerFunc{"POST": s.search([]scim.ResourceKind{kind})})
	}
	// Queries at the root span every resource type (RFC 7644 §3.4.3).
	all := []scim.ResourceKind{scim.UserKind, scim.GroupKind}
	s.methods(p+"/.search", map[string]handlerFunc{"POST": s.search(all)})
	s.methods(p+"/{$}", map[string]handlerFunc{"GET": s.list(all)})
	s.methods(p+"/Me", map[string]handlerFunc{"GET": s.me, "PUT": s.me, "PATCH": s.me, "DELETE": s.me, "POST": meNotImplemented})
	s.methods(p+"/Bulk", map[string]handlerFunc{"POST": s.bulk})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &httpError{status: http.StatusNotFound, detail: "no SCIM endpoint at " + r.URL.Path + "; see " + Prefix + "/ResourceTypes"})
	})
	s.routeList = append(s.routeList, "* "+p+"/")
}

// Routes lists every route of the SCIM API as "METHOD pattern" ("* /scim/v2/" for
// the answer to unknown paths), so that tests can require a case for each one.
func Routes(svc *scim.Service) []string {
	s := &Server{svc: svc, log: zap.NewNop(), mux: http.NewServeMux()}
	s.routes()
	return s.routeList
}

// base returns the absolute URL of the SCIM API for this request.
func (s *Server) base(r *http.Request) string {
	if s.baseURL != "" {
		return s.baseURL + Prefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix
}

func tenant(r *http.Request) string {
	p, _ := auth.FromContext(r.Context())
	return p.TenantID
}

// readBody decodes a JSON object body with scim.DecodeJSON: numbers stay
// json.Number so that integers keep their precision, and trailing data, duplicate
// keys, NUL characters, invalid UTF-8 and nesting deeper than the service's
// MaxJSONDepth are refused before anything is read from it.
func (s *Server) readBody(r *http.Request) (map[string]any, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/scim+json" && mt != "application/json" {
			return nil, &httpError{status: http.StatusUnsupportedMediaType, detail: "send the body as application/scim+json or application/json, not " + ct}
		}
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge, detail: "the request body is larger than " + strconv.FormatInt(tooBig.Limit, 10) + " bytes"}
		}
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "cannot read the request body", Err: err}
	}
	var v any
	if err := scim.DecodeJSON(raw, s.svc.Limits().MaxJSONDepth, &v); err != nil {
		return nil, err
	}
	body, ok := v.(map[string]any)
	if !ok {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "the body must be a JSON object, not " + jsonKind(v)}
	}
	return body, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return "it is null"
	case errors.As(err, &se):
		return "syntax error at byte " + strconv.FormatInt(se.Offset, 10) + ": " + se.Error()
	case errors.As(err, &te):
		return "found " + te.Value + " where an object belongs"
	case errors.Is(err, io.EOF):
		return "it is empty"
	}
	return err.Error()
}

// projection reads attributes and excludedAttributes from the query (RFC 7644 §3.9);
// they apply to every response that carries a resource.
func projection(r *http.Request) scim.Projection {
	q := r.URL.Query()
	return scim.Projection{Attributes: scim.SplitList(q.Get("attributes")), Excluded: scim.SplitList(q.Get("excludedAttributes"))}
}

// streamsMembers reports whether an answer about a resource of kind under proj is a
// group with its whole member list in the default form, which writeStreamed writes
// row by row: the resource is then read without members (readProjection).
func streamsMembers(kind scim.ResourceKind, proj scim.Projection) bool {
	return kind == scim.GroupKind && len(proj.Attributes) == 0 && len(proj.Excluded) == 0
}

// readProjection is the projection to read a resource with for an answer under
// proj: without members when writeStreamed adds them.
func readProjection(kind scim.ResourceKind, proj scim.Projection) scim.Projection {
	if streamsMembers(kind, proj) {
		return scim.Projection{Excluded: []string{"members"}}
	}
	return proj
}

// answer writes res under proj: a group's members streamed from the store when
// streamsMembers, otherwise as writeResource does.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, status int, kind scim.ResourceKind, res *scim.Resource, proj scim.Projection) {
	if streamsMembers(kind, proj) {
		s.writeStreamed(w, r, status, res)
		return
	}
	s.writeResource(w, r, status, res, proj)
}

// writeStreamed writes a group read without members, then its members as they come
// from the database, so that a group of 100,000 members costs the server no more
// memory than one of ten. The members are read after the group's row: a member
// change committed in between shows in the list but not in the ETag, whose
// If-Match then fails (412) rather than overwriting it. The status is sent with the
// first member (or after the walk), so a walk that cannot start is answered as an
// error like any other; a failure once the answer has begun cuts the connection,
// so the client sees a broken answer, never a well-formed wrong one.
func (s *Server) writeStreamed(w http.ResponseWriter, r *http.Request, status int, res *scim.Resource) {
	base := s.base(r)
	head, err := appendJSON(nil, res.Render(base, scim.Projection{}))
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode group %s: %w", res.ID, err))
		return
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	started := false
	start := func() {
		started = true
		w.Header().Set("ETag", res.ETag())
		if status == http.StatusCreated {
			w.Header().Set("Location", res.Location(base))
		}
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(status)
		_, _ = bw.Write(head[:len(head)-1]) // the group without its closing brace
	}
	n := 0
	var buf []byte
	err = s.svc.EachMember(r.Context(), tenant(r), res.ID, base, func(m map[string]any) error {
		var err error
		if buf, err = appendJSON(buf[:0], m); err != nil {
			return err
		}
		if n == 0 {
			start()
			_, _ = bw.WriteString(`,"members":[`)
		} else {
			_ = bw.WriteByte(',')
		}
		n++
		_, err = bw.Write(buf)
		return err
	})
	switch {
	case err != nil && !started:
		s.writeError(w, r, err)
		return
	case err != nil:
		s.log.Warn("group answer cut short", zap.String("request_id", middleware.RequestID(r.Context())),
			zap.String("group", res.ID), zap.Int("members_written", n), zap.Error(err))
		panic(http.ErrAbortHandler)
	case n > 0:
		_ = bw.WriteByte(']')
	default:
		start()
	}
	_ = bw.WriteByte('}')
	_ = bw.Flush()
}

func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res *scim.Resource, proj scim.Projection) {
	base := s.base(r)
	w.Header().Set("ETag", res.ETag())
	if status == http.StatusCreated {
		w.Header().Set("Location", res.Location(base))
	}
	writeJSON(w, status, res.Render(base, proj))
}

func (s *Server) create(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := s.readBody(r)
		if err != nil {
			return err
		}
		proj := projection(r)
		res, err := s.svc.Create(r.Context(), tenant(r), kind, body, proj)
		if err != nil {
			return err
		}
		s.writeResource(w, r, http.StatusCreated, res, proj)
		return nil
	}
}

func (s *Server) get(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		proj := projection(r)
		res, err := s.svc.Get(r.Context(), tenant(r), kind, r.PathValue("id"), readProjection(kind, proj))
		if err != nil {
			return err
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagListed(inm, res.ETag()) {
			w.Header().Set("ETag", res.ETag())
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		s.answer(w, r, http.StatusOK, kind, res, proj)
		return nil
	}
}

// etagListed reports whether an If-None-Match list names tag (weak comparison,
// RFC 7232 §3.2).
func etagListed(header, tag string) bool {
	want := strings.TrimPrefix(tag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == want {
			return true
		}
	}
	return false
}

func (s *Server) replace(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := s.readBody(r)
		if err != nil {
			return err
		}
		proj := projection(r)
		res, err := s.svc.Replace(r.Context(), tenant(r), kind, r.PathValue("id"), body, r.Header.Get("If-Match"), readProjection(kind, proj))
		if err != nil {
			return err
		}
		s.answer(w, r, http.StatusOK, kind, res, proj)
		return nil
	}
}

func (s *Server) patch(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := s.readBody(r)
		if err != nil {
			return err
		}
		ops, err := scim.ParsePatch(body, s.svc.Limits().MaxOperations, scim.QuirksFrom(r.Context()))
		if err != nil {
			return err
		}
		// RFC 7644 §3.5.2: 200 with the resource, or 204 when the client prefers a
		// minimal answer (RFC 7240 Prefer: return=minimal). Entra's provisioning
		// service expects 204 for a group PATCH, Okta's Group Push takes 200 or 204,
		// and neither reads the member list a 200 would carry: tokens of their
		// profiles get 204, so one member more or less costs the same in a group of
		// any size.
		idpGroup := kind == scim.GroupKind && (principalProfile(r) == scim.ProfileEntra || principalProfile(r) == scim.ProfileOkta)
		minimal := preferMinimal(r) || idpGroup
		proj := projection(r)
		if minimal {
			// A 204 carries no body: read back no memberships, so that changing
			// one member costs the same in a group of any size.
			proj = scim.Projection{Excluded: []string{"members", "groups"}}
			if a := store.ActorFrom(r.Context()); a != nil {
				a.Status = http.StatusNoContent // the status the audit event records
			}
		}
		res, err := s.svc.Patch(r.Context(), tenant(r), kind, r.PathValue("id"), ops, r.Header.Get("If-Match"), readProjection(kind, proj))
		if err != nil {
			return err
		}
		if minimal {
			w.Header().Set("ETag", res.ETag())
			if !idpGroup {
				w.Header().Set("Preference-Applied", "return=minimal")
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		s.answer(w, r, http.StatusOK, kind, res, proj)
		return nil
	}
}

func (s *Server) delete(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := s.svc.Delete(r.Context(), tenant(r), kind, r.PathValue("id"), r.Header.Get("If-Match")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// preferMinimal reports whether the request carries Prefer: return=minimal.
func preferMinimal(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.ReplaceAll(strings.TrimSpace(p), " ", ""), "return=minimal") {
				return true
			}
		}
	}
	return false
}

// list serves GET /Users, GET /Groups and the root GET / (RFC 7644 §3.4.2).
func (s *Server) list(kinds []scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		lq := scim.ListQuery{
			Filter:     q.Get("filter"),
			SortBy:     q.Get("sortBy"),
			SortOrder:  q.Get("sortOrder"),
			StartIndex: 1,
			Projection: projection(r),
		}
		if v := q.Get("startIndex"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return &scim.Error{Kind: scim.KindInvalidValue, Detail: "startIndex must be an integer (1 or more), not " + strconv.Quote(v)}
			}
			lq.StartIndex = n
		}
		if v := q.Get("count"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return &scim.Error{Kind: scim.KindInvalidValue, Detail: "count must be an integer (0 or more), not " + strconv.Quote(v)}
			}
			lq.Count = &n
		}
		if q.Has("cursor") {
			c := q.Get("cursor")
			lq.Cursor = &c
		}
		return s.writeList(w, r, kinds, lq)
	}
}

// searchRequest is the body of POST …/.search (RFC 7644 §3.4.3).
type searchRequest struct {
	Schemas            []string `json:"schemas"`
	Attributes         []string `json:"attributes"`
	ExcludedAttributes []string `json:"excludedAttributes"`
	Filter             string   `json:"filter"`
	SortBy             string   `json:"sortBy"`
	SortOrder          string   `json:"sortOrder"`
	StartIndex         *int     `json:"startIndex"`
	Count              *int     `json:"count"`
	Cursor             *string  `json:"cursor"`
}

// search serves POST /Users/.search, /Groups/.search and /.search with the same
// semantics as the GET lists (RFC 7644 §3.4.3).
func (s *Server) search(kinds []scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := s.readBody(r)
		if err != nil {
			return err
		}
		raw, _ := json.Marshal(body)
		var sr searchRequest
		if err := json.Unmarshal(raw, &sr); err != nil {
			return &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "the SearchRequest does not fit RFC 7644 §3.4.3: " + jsonProblem(err)}
		}
		if !slices.Contains(sr.Schemas, schemas.SearchRequestURN) {
			return &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "schemas must be [\"" + schemas.SearchRequestURN + "\"]"}
		}
		lq := scim.ListQuery{
			Filter: sr.Filter, SortBy: sr.SortBy, SortOrder: sr.SortOrder, StartIndex: 1, Count: sr.Count, Cursor: sr.Cursor,
			Projection: scim.Projection{Attributes: sr.Attributes, Excluded: sr.ExcludedAttributes},
		}
		if sr.StartIndex != nil {
			lq.StartIndex = *sr.StartIndex
		}
		return s.writeList(w, r, kinds, lq)
	}
}

func (s *Server) writeList(w http.ResponseWriter, r *http.Request, kinds []scim.ResourceKind, lq scim.ListQuery) error {
	page, err := s.svc.Search(r.Context(), tenant(r), kinds, lq)
	if err != nil {
		return err
	}
	base := s.base(r)
	resources := make([]any, len(page.Resources))
	for i, res := range page.Resources {
		resources[i] = res.Render(base, lq.Projection)
	}
	out := map[string]any{
		"schemas":      []string{schemas.ListResponseURN},
		"totalResults": page.TotalResults,
		"itemsPerPage": len(resources),
		"Resources":    resources,
	}
	if page.Cursor {
		// RFC 9865 §2.2: a cursor page has no startIndex, and cursors to its
		// neighbours where they exist.
		if page.NextCursor != "" {
			out["nextCursor"] = page.NextCursor
		}
		if page.PreviousCursor != "" {
			out["previousCursor"] = page.PreviousCursor
		}
	} else {
		out["startIndex"] = page.StartIndex
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func principalProfile(r *http.Request) string {
	p, _ := auth.FromContext(r.Context())
	return p.Profile
}

// noteQuirks logs the non-standard forms a request needed read, with its request id,
// and adds them to the tenant's counts (see scimd tenant report). Requests that
// dispatch to others (Bulk, /Me) are counted by the requests they dispatch.
func (s *Server) noteQuirks(r *http.Request, q *scim.Quirks) {
	applied := q.Applied()
	if len(applied) == 0 {
		return
	}
	p, _ := auth.FromContext(r.Context())
	s.log.Info("client quirks applied", zap.String("request_id", middleware.RequestID(r.Context())),
		zap.String("tenant_id", p.TenantID), zap.String("token_id", p.TokenID), zap.String("profile", p.Profile),
		zap.Strings("quirks", q.Names()))
	if err := s.svc.RecordQuirks(r.Context(), p.TenantID, p.TokenID, applied); err != nil {
		s.log.Warn("cannot record client quirks", zap.String("request_id", middleware.RequestID(r.Context())), zap.Error(err))
	}
}
