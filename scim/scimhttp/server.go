package scimhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/scimd/scimd/schemas"
	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/auth"
	"github.com/scimd/scimd/scim/middleware"
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
}

// Options configure a Server.
type Options struct {
	// BaseURL is the public URL scimd is reached at (e.g. https://id.example.com);
	// meta.location and Location are built from it. Empty: from the request's Host.
	BaseURL string
	// MaxBodyBytes bounds request bodies; larger ones are 413.
	MaxBodyBytes int64
}

// New returns the SCIM API handler: it authenticates every request with authn and
// requires the scim scope.
func New(svc *scim.Service, authn auth.Authenticator, log *zap.Logger, o Options) http.Handler {
	s := &Server{svc: svc, log: log.Named("scimhttp"), baseURL: strings.TrimRight(o.BaseURL, "/"), maxBody: o.MaxBodyBytes, mux: http.NewServeMux()}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	s.routes()
	var h http.Handler = s.mux
	h = middleware.NotePrincipal(h)
	h = auth.Require(authn, scim.ScopeSCIM, s.writeError)(h)
	h = middleware.LimitBody(s.maxBody)(h)
	h = middleware.Recover(s.log, s.writeError)(h)
	return h
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// methods routes one path by method and answers any other method with 405 and Allow.
func (s *Server) methods(pattern string, m map[string]handlerFunc) {
	allow := make([]string, 0, len(m))
	for k := range m {
		allow = append(allow, k)
	}
	allowed := strings.Join(sortStrings(allow), ", ")
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
		if err := h(w, r); err != nil {
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
		s.methods(ep, map[string]handlerFunc{"GET": s.list(kind), "POST": s.create(kind)})
		s.methods(ep+"/{id}", map[string]handlerFunc{"GET": s.get(kind), "PUT": s.replace(kind), "PATCH": s.patch(kind), "DELETE": s.delete(kind)})
	}
	notImplemented := func(what string) handlerFunc {
		return func(http.ResponseWriter, *http.Request) error {
			return &httpError{status: http.StatusNotImplemented, detail: what + " is not supported by this server (see /ServiceProviderConfig)"}
		}
	}
	s.methods(p+"/Me", map[string]handlerFunc{"GET": notImplemented("/Me"), "PUT": notImplemented("/Me"), "PATCH": notImplemented("/Me"), "DELETE": notImplemented("/Me"), "POST": notImplemented("/Me")})
	s.methods(p+"/Bulk", map[string]handlerFunc{"POST": notImplemented("Bulk")})
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &httpError{status: http.StatusNotFound, detail: "no SCIM endpoint at " + r.URL.Path + "; see " + Prefix + "/ResourceTypes"})
	})
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

// readBody decodes a JSON object body. Numbers stay json.Number so that integers
// keep their precision.
func readBody(r *http.Request) (map[string]any, error) {
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
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var body map[string]any
	if err := d.Decode(&body); err != nil || body == nil {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "the body must be a JSON object: " + jsonProblem(err)}
	}
	if d.More() {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: "the body has data after its JSON object"}
	}
	return body, nil
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

func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res *scim.Resource) {
	base := s.base(r)
	w.Header().Set("ETag", res.ETag())
	if status == http.StatusCreated {
		w.Header().Set("Location", res.Location(base))
	}
	writeJSON(w, status, res.Render(base))
}

func (s *Server) create(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		res, err := s.svc.Create(r.Context(), tenant(r), kind, body)
		if err != nil {
			return err
		}
		s.writeResource(w, r, http.StatusCreated, res)
		return nil
	}
}

func (s *Server) get(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		res, err := s.svc.Get(r.Context(), tenant(r), kind, r.PathValue("id"))
		if err != nil {
			return err
		}
		if inm := r.Header.Get("If-None-Match"); inm != "" && etagListed(inm, res.ETag()) {
			w.Header().Set("ETag", res.ETag())
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		s.writeResource(w, r, http.StatusOK, res)
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
		body, err := readBody(r)
		if err != nil {
			return err
		}
		res, err := s.svc.Replace(r.Context(), tenant(r), kind, r.PathValue("id"), body, r.Header.Get("If-Match"))
		if err != nil {
			return err
		}
		s.writeResource(w, r, http.StatusOK, res)
		return nil
	}
}

func (s *Server) patch(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		ops, err := scim.ParsePatch(body, s.svc.Limits().MaxOperations)
		if err != nil {
			return err
		}
		res, err := s.svc.Patch(r.Context(), tenant(r), kind, r.PathValue("id"), ops, r.Header.Get("If-Match"))
		if err != nil {
			return err
		}
		s.writeResource(w, r, http.StatusOK, res)
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

// list serves GET /Users and GET /Groups (RFC 7644 §3.4.2).
func (s *Server) list(kind scim.ResourceKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		lq := scim.ListQuery{Filter: q.Get("filter"), StartIndex: 1}
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
		page, err := s.svc.List(r.Context(), tenant(r), kind, lq)
		if err != nil {
			return err
		}
		base := s.base(r)
		resources := make([]any, len(page.Resources))
		for i, res := range page.Resources {
			resources[i] = res.Render(base)
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"schemas":      []string{schemas.ListResponseURN},
			"totalResults": page.TotalResults,
			"itemsPerPage": len(resources),
			"startIndex":   page.StartIndex,
			"Resources":    resources,
		})
		return nil
	}
}
