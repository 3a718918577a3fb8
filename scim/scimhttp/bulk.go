package scimhttp

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/scim/middleware"
	"github.com/scimd/scimd/store"
)

// The message schemas of RFC 7644 §3.7.
const (
	bulkRequestURN  = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	bulkResponseURN = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
	// bulkIDPrefix starts a value that refers to the resource another operation of the
	// same request creates (RFC 7644 §3.7.2).
	bulkIDPrefix = "bulkId:"
)

// Defaults of the bulk limits advertised in /ServiceProviderConfig.
const (
	DefaultBulkMaxOperations   = 1000
	DefaultBulkMaxPayloadBytes = 1 << 20
)

// limitBody bounds request bodies: a bulk request by its maxPayloadSize, every other
// request by MaxBodyBytes (RFC 7644 §3.7.4).
func (s *Server) limitBody(next http.Handler) http.Handler {
	normal := middleware.LimitBody(s.maxBody)(next)
	bulk := middleware.LimitBody(s.bulkMaxBody)(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Prefix+"/Bulk" {
			bulk.ServeHTTP(w, r)
			return
		}
		normal.ServeHTTP(w, r)
	})
}

// bulkOp is one validated operation of a bulk request.
type bulkOp struct {
	index    int    // position in the request
	method   string // POST, PUT, PATCH or DELETE
	bulkID   string
	endpoint string // "/Users" or "/Groups"
	id       string // the resource of PUT, PATCH and DELETE; may be "bulkId:…"
	version  string // sent as If-Match
	data     map[string]any
	refs     []string // bulkIds that id and data refer to, each once, in order of appearance
}

type bulkRequest struct {
	failOnErrors int // 0: run every operation
	ops          []*bulkOp
}

// bulkResult is one entry of a BulkResponse (RFC 7644 §3.7.3).
type bulkResult struct {
	Method   string          `json:"method"`
	BulkID   string          `json:"bulkId,omitempty"`
	Version  string          `json:"version,omitempty"`
	Location string          `json:"location,omitempty"`
	Status   string          `json:"status"`
	Response json.RawMessage `json:"response,omitempty"`
}

// bulk serves POST /Bulk (RFC 7644 §3.7). Each operation is a request of its own,
// dispatched through the same router with the caller's context, so it is
// authenticated, validated and answered exactly as the single-resource endpoint would
// answer it.
func (s *Server) bulk(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	req, err := s.parseBulk(body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"schemas":    []string{bulkResponseURN},
		"Operations": s.runBulk(r, req),
	})
	return nil
}

// parseBulk checks the shape of a BulkRequest before any operation runs.
func (s *Server) parseBulk(body map[string]any) (*bulkRequest, error) {
	var rawSchemas, rawOps, rawFail any
	for k, v := range body {
		switch strings.ToLower(k) {
		case "schemas":
			rawSchemas = v
		case "operations":
			rawOps = v
		case "failonerrors":
			rawFail = v
		}
	}
	found := false
	list, _ := rawSchemas.([]any)
	for _, it := range list {
		if u, _ := it.(string); strings.EqualFold(u, bulkRequestURN) {
			found = true
		}
	}
	if !found {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: fmt.Sprintf("schemas must be [%q]", bulkRequestURN)}
	}
	req := &bulkRequest{}
	if rawFail != nil {
		n, ok := rawFail.(json.Number)
		v, err := n.Int64()
		if !ok || err != nil || v < 1 {
			return nil, &scim.Error{Kind: scim.KindInvalidValue, Detail: fmt.Sprintf("failOnErrors must be an integer of 1 or more (leave it out to run every operation), not %s", jsonText(rawFail))}
		}
		req.failOnErrors = int(min(v, int64(s.bulkMaxOps)+1))
	}
	opList, ok := rawOps.([]any)
	if !ok || len(opList) == 0 {
		return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: `Operations must be a non-empty array of {"method", "path", "bulkId", "version", "data"}`}
	}
	if len(opList) > s.bulkMaxOps {
		return nil, &httpError{status: http.StatusRequestEntityTooLarge, detail: fmt.Sprintf(
			"the bulk request has %d operations; the limit is %d (bulk.maxOperations in /ServiceProviderConfig)", len(opList), s.bulkMaxOps)}
	}
	owner := make(map[string]int, len(opList))
	for i, it := range opList {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, &scim.Error{Kind: scim.KindInvalidSyntax, Detail: fmt.Sprintf("Operations[%d] must be an object", i)}
		}
		op, err := s.parseBulkOp(i, m)
		if err != nil {
			return nil, err
		}
		if op.bulkID != "" {
			if j, dup := owner[op.bulkID]; dup {
				return nil, &scim.Error{Kind: scim.KindInvalidValue, Detail: fmt.Sprintf("Operations[%d].bulkId %q is already the bulkId of Operations[%d]; bulkIds must be unique within a request", i, strings.TrimPrefix(refText(op.bulkID), bulkIDPrefix), j)}
			}
			owner[op.bulkID] = i
		}
		req.ops = append(req.ops, op)
	}
	return req, nil
}

func (s *Server) parseBulkOp(i int, m map[string]any) (*bulkOp, error) {
	op := &bulkOp{index: i}
	bad := func(kind scim.ErrorKind, format string, args ...any) error {
		return &scim.Error{Kind: kind, Detail: fmt.Sprintf("Operations[%d].", i) + fmt.Sprintf(format, args...)}
	}
	var rawMethod, rawBulkID, rawPath, rawVersion, rawData any
	for k, v := range m {
		switch strings.ToLower(k) {
		case "method":
			rawMethod = v
		case "bulkid":
			rawBulkID = v
		case "path":
			rawPath = v
		case "version":
			rawVersion = v
		case "data":
			rawData = v
		}
	}
	method, ok := rawMethod.(string)
	if !ok {
		return nil, bad(scim.KindInvalidSyntax, "method is required: POST, PUT, PATCH or DELETE")
	}
	op.method = strings.ToUpper(method)
	switch op.method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil, bad(scim.KindInvalidValue, "method must be POST, PUT, PATCH or DELETE, not %q", method)
	}
	if rawBulkID != nil {
		b, ok := rawBulkID.(string)
		if !ok || b == "" {
			return nil, bad(scim.KindInvalidValue, "bulkId must be a non-empty string, not %s", jsonText(rawBulkID))
		}
		op.bulkID = b
	}
	if op.method == http.MethodPost && op.bulkID == "" {
		return nil, bad(scim.KindInvalidValue, "bulkId is required with POST (RFC 7644 §3.7)")
	}
	path, ok := rawPath.(string)
	if !ok {
		return nil, bad(scim.KindInvalidSyntax, "path is required: /Users or /Groups for POST, /Users/{id} or /Groups/{id} otherwise")
	}
	for _, kind := range []scim.ResourceKind{scim.UserKind, scim.GroupKind} {
		ep := s.svc.Types().Of(kind).Endpoint
		if path == ep {
			op.endpoint = ep
		} else if id, ok := strings.CutPrefix(path, ep+"/"); ok && id != "" && !strings.Contains(id, "/") {
			op.endpoint, op.id = ep, id
		}
	}
	switch {
	case op.endpoint == "":
		return nil, bad(scim.KindInvalidValue, "path %q names no resource of this server: use /Users or /Groups for POST, /Users/{id} or /Groups/{id} otherwise", path)
	case op.method == http.MethodPost && op.id != "":
		return nil, bad(scim.KindInvalidValue, "path %q: POST creates in a collection, so the path is %s", path, op.endpoint)
	case op.method != http.MethodPost && op.id == "":
		return nil, bad(scim.KindInvalidValue, "path %q: %s needs one resource, such as %s/{id}", path, op.method, op.endpoint)
	}
	if rawVersion != nil {
		v, ok := rawVersion.(string)
		if !ok {
			return nil, bad(scim.KindInvalidValue, `version must be a string such as "W/\"3\"", not %s`, jsonText(rawVersion))
		}
		op.version = v
	}
	if op.method != http.MethodDelete {
		data, ok := rawData.(map[string]any)
		if !ok {
			return nil, bad(scim.KindInvalidSyntax, "data must be the %s body as a JSON object", op.method)
		}
		op.data = data
	}
	seen := map[string]bool{}
	addRef := func(v string) {
		if ref, ok := strings.CutPrefix(v, bulkIDPrefix); ok && !seen[ref] {
			seen[ref] = true
			op.refs = append(op.refs, ref)
		}
	}
	addRef(op.id)
	walkStrings(op.data, addRef)
	return op, nil
}

// walkStrings calls fn with every string value in v, a decoded JSON value (whose
// nesting the JSON decoder bounds).
func walkStrings(v any, fn func(string)) {
	switch x := v.(type) {
	case string:
		fn(x)
	case map[string]any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	case []any:
		for _, e := range x {
			walkStrings(e, fn)
		}
	}
}

// substitute returns v with every "bulkId:…" string value replaced by the id of the
// resource that operation created.
func substitute(v any, created map[string]string) any {
	switch x := v.(type) {
	case string:
		if ref, ok := strings.CutPrefix(x, bulkIDPrefix); ok {
			if id, ok := created[ref]; ok {
				return id
			}
		}
		return x
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = substitute(e, created)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substitute(e, created)
		}
		return out
	}
	return v
}

// runBulk runs the operations in request order, except that an operation runs only
// after every operation whose bulkId it references (RFC 7644 §3.7.2). It stops once
// failOnErrors operations have failed (§3.7.3) and reports operations in the order
// they ran.
func (s *Server) runBulk(r *http.Request, req *bulkRequest) []bulkResult {
	ops := req.ops
	owner := make(map[string]int, len(ops))
	for i, op := range ops {
		if op.bulkID != "" {
			owner[op.bulkID] = i
		}
	}
	// waiting[i] counts the referenced operations that have not run yet; dependents[j]
	// lists the operations that reference operation j.
	waiting := make([]int, len(ops))
	dependents := make([][]int, len(ops))
	for i, op := range ops {
		for _, ref := range op.refs {
			if j, ok := owner[ref]; ok {
				dependents[j] = append(dependents[j], i)
				waiting[i]++
			}
		}
	}
	ready := &indexHeap{}
	for i := range ops {
		if waiting[i] == 0 {
			heap.Push(ready, i)
		}
	}
	created := map[string]string{} // bulkId → id of the resource its POST created
	ran := make([]bool, len(ops))
	results := make([]bulkResult, 0, len(ops))
	failures := 0
	// record adds a result and reports whether the request must stop.
	record := func(res bulkResult) bool {
		results = append(results, res)
		if st, _ := strconv.Atoi(res.Status); st >= 400 {
			failures++
		}
		return req.failOnErrors > 0 && failures >= req.failOnErrors
	}
	// Each operation enters the heap once, when its last reference has run.
	for ready.Len() > 0 {
		if r.Context().Err() != nil {
			return results
		}
		i := heap.Pop(ready).(int)
		ran[i] = true
		if record(s.runBulkOp(r, ops, i, owner, created)) {
			return results
		}
		for _, j := range dependents[i] {
			if waiting[j]--; waiting[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	// What is left waits, directly or through others, on a circular reference. RFC 7644
	// §3.7.1 lets a service provider answer 409 instead of resolving it.
	for i, op := range ops {
		if ran[i] {
			continue
		}
		err := &httpError{status: http.StatusConflict, detail: cycleDetail(ops, i, owner, ran)}
		if record(s.bulkFailure(r, op, err)) {
			return results
		}
	}
	return results
}

// cycleDetail explains why operation i, which never became ready, cannot run: it
// follows unrun references from i until one repeats.
func cycleDetail(ops []*bulkOp, i int, owner map[string]int, ran []bool) string {
	path := []int{i}
	at := map[int]int{i: 0}
	first := -1
	cur := i
	for range ops {
		next := -1
		for _, ref := range ops[cur].refs {
			if j, ok := owner[ref]; ok && !ran[j] {
				next = j
				break
			}
		}
		if next < 0 {
			break
		}
		if p, seen := at[next]; seen {
			first = p
			path = append(path, next)
			break
		}
		at[next] = len(path)
		path = append(path, next)
		cur = next
	}
	const advice = "; scimd does not resolve circular bulkId references (RFC 7644 §3.7.1): create the resources first, then add the references with PATCH"
	if first < 0 {
		return "the operation waits on operations that could not run" + advice
	}
	cycle := path[first:]
	names := make([]string, 0, min(len(cycle), maxCycleNames+1))
	for k, j := range cycle {
		if k == maxCycleNames && len(cycle) > maxCycleNames+1 {
			names = append(names, fmt.Sprintf("… (%d operations in all)", len(cycle)-1), refText(ops[cycle[len(cycle)-1]].bulkID))
			break
		}
		names = append(names, refText(ops[j].bulkID))
	}
	shown := strings.Join(names, " → ")
	if first == 0 {
		return "circular bulkId references: " + shown + advice
	}
	return fmt.Sprintf("the operation references %s, which depends on circular bulkId references: %s%s", refText(ops[path[1]].bulkID), shown, advice)
}

// maxCycleNames bounds how many operations of a cycle an error detail names.
const maxCycleNames = 5

// refText renders a bulkId reference for an error detail, shortened to 64 bytes.
func refText(bulkID string) string {
	if len(bulkID) > 64 {
		bulkID = strings.ToValidUTF8(bulkID[:64], "") + "…"
	}
	return bulkIDPrefix + bulkID
}

// runBulkOp runs operation i through the router and reports its outcome.
func (s *Server) runBulkOp(r *http.Request, ops []*bulkOp, i int, owner map[string]int, created map[string]string) bulkResult {
	op := ops[i]
	for _, ref := range op.refs {
		if _, ok := created[ref]; ok {
			continue
		}
		var detail string
		j, known := owner[ref]
		switch {
		case !known:
			detail = refText(ref) + " names no operation of this bulk request"
		case ops[j].method != http.MethodPost:
			detail = fmt.Sprintf("%s names a %s operation (Operations[%d]), which creates no resource; only POST operations can be referenced", refText(ref), ops[j].method, j)
		default:
			detail = fmt.Sprintf("%s names an operation that failed (Operations[%d]), so there is no resource to refer to", refText(ref), j)
		}
		return s.bulkFailure(r, op, &httpError{status: http.StatusConflict, detail: detail})
	}
	id, _ := substitute(op.id, created).(string)
	var body []byte
	if op.method != http.MethodDelete {
		var err error
		if body, err = json.Marshal(substitute(op.data, created)); err != nil {
			return s.bulkFailure(r, op, fmt.Errorf("encode bulk operation data: %w", err))
		}
	}
	// The path is one of /Users, /Groups or one resource under them (parseBulkOp), so
	// an operation never reaches /Bulk again.
	target := Prefix + op.endpoint
	if id != "" {
		target += "/" + url.PathEscape(id)
	}
	// The operation's changes and its refusal are recorded as its own (opActor).
	ctx := r.Context()
	oa := s.opActor(r, op, id)
	if oa != nil {
		ctx = store.WithActor(ctx, oa)
	}
	sub, err := http.NewRequestWithContext(ctx, op.method, target, bytes.NewReader(body))
	if err != nil {
		return s.bulkFailure(r, op, fmt.Errorf("build bulk operation request: %w", err))
	}
	sub.Host, sub.TLS, sub.RemoteAddr = r.Host, r.TLS, r.RemoteAddr
	if body != nil {
		sub.Header.Set("Content-Type", "application/scim+json")
	}
	if op.version != "" && op.method != http.MethodPost {
		sub.Header.Set("If-Match", op.version)
	}
	rec := newRecorder()
	// The data of one operation has the normal per-request body limit.
	sub.Body = http.MaxBytesReader(rec, sub.Body, s.maxBody)
	s.sub.ServeHTTP(rec, sub)
	if rec.status >= 400 {
		s.svc.AuditRefused(ctx, oa, rec.status)
	}
	res := s.bulkOutcome(r, op, id, rec)
	if rec.status == http.StatusCreated && op.bulkID != "" {
		var doc struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(rec.body.Bytes(), &doc) == nil && doc.ID != "" {
			created[op.bulkID] = doc.ID
		}
	}
	return res
}

// bulkFailure reports an operation that bulk itself refused, with the error body
// the SCIM error writer makes of err.
func (s *Server) bulkFailure(r *http.Request, op *bulkOp, err error) bulkResult {
	rec := newRecorder()
	id := op.id
	if strings.HasPrefix(id, bulkIDPrefix) {
		id = ""
	}
	if oa := s.opActor(r, op, id); oa != nil {
		s.writeError(rec, r.WithContext(store.WithActor(r.Context(), oa)), err)
		s.svc.AuditRefused(r.Context(), oa, rec.status)
	} else {
		s.writeError(rec, r, err)
	}
	return s.bulkOutcome(r, op, id, rec)
}

// bulkOutcome turns an operation's recorded response into its BulkResponse entry:
// the status as a string, version from ETag, location from Location or meta.location,
// and the error body of a failure (RFC 7644 §3.7.3).
func (s *Server) bulkOutcome(r *http.Request, op *bulkOp, id string, rec *recorder) bulkResult {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	res := bulkResult{Method: op.method, BulkID: op.bulkID, Status: strconv.Itoa(rec.status)}
	if rec.status >= 400 {
		if json.Valid(rec.body.Bytes()) {
			res.Response = json.RawMessage(bytes.Clone(rec.body.Bytes()))
		}
	} else {
		res.Version = rec.header.Get("ETag")
		res.Location = rec.header.Get("Location")
		if res.Location == "" && rec.body.Len() > 0 {
			var doc struct {
				Meta struct {
					Location string `json:"location"`
				} `json:"meta"`
			}
			if json.Unmarshal(rec.body.Bytes(), &doc) == nil {
				res.Location = doc.Meta.Location
			}
		}
	}
	if res.Location == "" && id != "" {
		res.Location = s.base(r) + op.endpoint + "/" + url.PathEscape(id)
	}
	return res
}

// recorder keeps the response of one bulk operation in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (rc *recorder) Header() http.Header { return rc.header }

func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 {
		rc.status = code
	}
}

func (rc *recorder) Write(b []byte) (int, error) {
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	return rc.body.Write(b)
}

// indexHeap is a min-heap of operation indexes: among the operations that may run,
// the earliest in the request runs first.
type indexHeap []int

func (h indexHeap) Len() int           { return len(h) }
func (h indexHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h indexHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *indexHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *indexHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// jsonText renders a decoded JSON value for an error detail, shortened to 100 bytes.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "that value"
	}
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}
