package scim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/scimd/scimd/store"
)

// Store is what the service needs from persistence; store.Store satisfies it.
type Store interface {
	Create(ctx context.Context, r *store.Resource) error
	Get(ctx context.Context, tenantID string, kind store.Kind, id string, opts store.ReadOptions) (*store.Resource, error)
	EachMember(ctx context.Context, tenantID, groupID string, fn func(store.Member) error) error
	List(ctx context.Context, tenantID string, kind store.Kind, opts store.ListOptions) (store.ListResult, error)
	Update(ctx context.Context, tenantID string, kind store.Kind, id string, fn store.Updater) (*store.Resource, error)
	Delete(ctx context.Context, tenantID string, kind store.Kind, id string, ifVersion int64) error
	Secret(ctx context.Context, name string) ([]byte, error)
	RecordQuirks(ctx context.Context, tenantID, tokenID string, counts map[string]int) error
	QuirkCounts(ctx context.Context, tenantID string) ([]store.QuirkCount, error)
	TenantByName(ctx context.Context, name string) (store.Tenant, error)
	// AppendAudit records a refused change (see AuditRefused).
	AppendAudit(ctx context.Context, e store.AuditEvent) error
}

// Limits bound the work one request may cause.
type Limits struct {
	// MaxResults is the largest page a list returns (ServiceProviderConfig filter.maxResults).
	MaxResults int
	// DefaultCount is the page size when the client names none.
	DefaultCount int
	// MaxFilterLength bounds a filter expression in bytes.
	MaxFilterLength int
	// MaxOperations bounds the operations of one PATCH request.
	MaxOperations int
	// BcryptCost is the work factor of password hashes.
	BcryptCost int
	// CursorTimeout is how long a list cursor stays valid (RFC 9865 cursorTimeout).
	CursorTimeout time.Duration
	// MaxFilterDepth bounds how deeply a filter nests parentheses, not (…) and […].
	MaxFilterDepth int
	// MaxJSONDepth bounds how deeply a request body nests JSON objects and arrays.
	MaxJSONDepth int
	// MaxResourceBytes bounds a resource's stored document (its attributes as JSON,
	// without members), so that PATCH requests cannot grow a resource past what one
	// request could carry back.
	MaxResourceBytes int
	// PasswordMinLength is the shortest password any route accepts, in characters
	// (see CheckPassword).
	PasswordMinLength int
}

// DefaultLimits are the limits scimd runs with unless configured otherwise.
func DefaultLimits() Limits {
	return Limits{MaxResults: 1000, DefaultCount: 100, MaxFilterLength: 4096, MaxOperations: 1000, BcryptCost: bcrypt.DefaultCost,
		CursorTimeout: time.Hour, MaxFilterDepth: 16, MaxJSONDepth: 32, MaxResourceBytes: 1 << 20, PasswordMinLength: DefaultPasswordMinLength}
}

// DefaultPasswordMinLength is the shortest password accepted unless configured
// otherwise (--password-min-length).
const DefaultPasswordMinLength = 8

// MaxPasswordBytes is the longest password accepted, in bytes: bcrypt reads no
// further, so a longer one would be stored as its first 72 bytes.
const MaxPasswordBytes = 72

// CheckPassword is scimd's one password policy, applied by every route that takes
// a password (SCIM POST, PUT and PATCH of password and Bulk, the compatibility
// routes, the set-password page): at least minLength characters (Unicode code
// points) and at most MaxPasswordBytes bytes of UTF-8. A password that fails it is
// KindInvalidValue (RFC 7644 §3.12 invalidValue; RFC 7643 §4.1.1 leaves password
// policy to the service provider), with a detail safe to show.
func CheckPassword(pw string, minLength int) error {
	if pw == "" {
		return errorf(KindInvalidValue, "password must not be empty")
	}
	if utf8.RuneCountInString(pw) < minLength {
		return errorf(KindInvalidValue, "the password must be at least %d characters long", minLength)
	}
	if len(pw) > MaxPasswordBytes {
		return errorf(KindInvalidValue, "the password is longer than %d bytes, the most the password hash reads", MaxPasswordBytes)
	}
	return nil
}

// CheckPassword applies the password policy (the package's CheckPassword) with
// the service's minimum length.
func (s *Service) CheckPassword(pw string) error {
	return CheckPassword(pw, s.passwordMinLength())
}

func (s *Service) passwordMinLength() int {
	if s.limits.PasswordMinLength > 0 {
		return s.limits.PasswordMinLength
	}
	return DefaultPasswordMinLength
}

// maxPageHints bounds how many index-paging walks are continued by keyset at once
// (about 200 bytes each).
const maxPageHints = 10000

// Service implements the SCIM use cases for one store.
type Service struct {
	st     Store
	log    *zap.Logger
	types  Types
	limits Limits

	keyMu sync.Mutex
	key   []byte // signs cursors; read once from the store

	hints *pageHints
}

// Option configures a Service.
type Option func(*Service)

// WithLimits replaces the default limits.
func WithLimits(l Limits) Option { return func(s *Service) { s.limits = l } }

// NewService returns a Service over st.
func NewService(st Store, log *zap.Logger, opts ...Option) *Service {
	s := &Service{st: st, log: log.Named("scim"), types: NewTypes(), limits: DefaultLimits(), hints: newPageHints(maxPageHints)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Types returns the resource types the service serves.
func (s *Service) Types() Types { return s.types }

// Limits returns the service's limits.
func (s *Service) Limits() Limits { return s.limits }

// readOpts loads the derived attributes the projection will return: members of a
// group, groups of a user. A client that excludes them costs no membership reads.
func (s *Service) readOpts(kind ResourceKind, p Projection) store.ReadOptions {
	rt := s.types.Of(kind)
	return store.ReadOptions{
		Members: kind == GroupKind && p.Needs(rt, "members"),
		Groups:  kind == UserKind && p.Needs(rt, "groups"),
	}
}

// Create validates body and stores it as a new resource (RFC 7644 §3.3). The
// returned resource carries what proj selects.
func (s *Service) Create(ctx context.Context, tenantID string, kind ResourceKind, body map[string]any, proj Projection) (*Resource, error) {
	return s.CreateQueued(ctx, tenantID, kind, body, proj, nil)
}

// Message is a message to queue with a write (see CreateQueued).
type Message = store.Message

// CreateQueued is Create that also queues msgs in the outbox in the same
// transaction: the messages exist exactly when the resource does.
func (s *Service) CreateQueued(ctx context.Context, tenantID string, kind ResourceKind, body map[string]any, proj Projection, msgs []Message) (*Resource, error) {
	w, err := s.types.parseResource(kind, body, QuirksFrom(ctx), true)
	if err != nil {
		return nil, err
	}
	sr := &store.Resource{TenantID: tenantID, Kind: kind, Members: w.members, Outbox: msgs}
	if err := w.columns(sr); err != nil {
		return nil, AsError(err)
	}
	if err := s.checkSize(sr); err != nil {
		return nil, err
	}
	if w.password != nil {
		if sr.PasswordHash, err = s.hash(*w.password); err != nil {
			return nil, err
		}
	}
	if err := s.st.Create(ctx, sr); err != nil {
		return nil, s.conflict(kind, err)
	}
	if kind == UserKind {
		// A new user belongs to no group yet: the written row is the whole answer.
		sr.Loaded.Groups = true
		return s.answer(ctx, sr, proj)
	}
	return s.Get(ctx, tenantID, kind, sr.ID, proj)
}

// conflict explains a uniqueness conflict with the attribute that caused it.
func (s *Service) conflict(kind ResourceKind, err error) error {
	if errors.Is(err, store.ErrConflict) {
		if kind == UserKind {
			return &Error{Kind: KindUniqueness, Detail: "userName is already taken in this tenant (userName is unique, case-insensitively)", Err: err}
		}
		return &Error{Kind: KindUniqueness, Detail: "the id is already taken", Err: err}
	}
	return AsError(err)
}

// Get returns one resource (RFC 7644 §3.4.1) with the derived attributes proj needs.
func (s *Service) Get(ctx context.Context, tenantID string, kind ResourceKind, id string, proj Projection) (*Resource, error) {
	nid, err := s.resourceID(kind, id)
	if err != nil {
		return nil, err
	}
	sr, err := s.st.Get(ctx, tenantID, kind, nid, s.readOpts(kind, proj))
	if err != nil {
		return nil, s.notFound(kind, id, err)
	}
	r, err := s.types.fromStore(sr)
	if err != nil {
		return nil, AsError(err)
	}
	return r, nil
}

// EachMember calls fn with each member of the tenant's group as an answer shows it
// (value, type, display and $ref under baseURL; RFC 7643 §4.2), one at a time, so
// that a group of any size is answered in bounded memory.
func (s *Service) EachMember(ctx context.Context, tenantID, groupID, baseURL string, fn func(map[string]any) error) error {
	nid, err := s.resourceID(GroupKind, groupID)
	if err != nil {
		return err
	}
	return s.st.EachMember(ctx, tenantID, nid, func(m store.Member) error {
		return fn(withRef(memberAttr(m), baseURL, ""))
	})
}

func (s *Service) notFound(kind ResourceKind, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Kind: KindNotFound, Detail: string(kind) + " " + strconv.Quote(id) + " not found", Err: err}
	}
	return AsError(err)
}

// ids are generated lower-case; a client may send them in any case.
func normID(id string) string { return strings.ToLower(id) }

// resourceID is normID for the id of a resource a client names (in a URL path). An
// id that is not valid UTF-8 or holds a NUL character names no resource (scimd
// assigns ids, RFC 7643 §3.1) and is KindNotFound before it reaches the store,
// whose PostgreSQL text columns would refuse it.
func (s *Service) resourceID(kind ResourceKind, id string) (string, error) {
	if strings.IndexByte(id, 0) >= 0 || !utf8.ValidString(id) {
		return "", s.notFound(kind, id, store.ErrNotFound)
	}
	return normID(id), nil
}

// ListQuery are the list parameters of RFC 7644 §3.4.2.
type ListQuery struct {
	Filter string
	// SortBy and SortOrder ("ascending", the default, or "descending") order the
	// results (RFC 7644 §3.4.2.3).
	SortBy     string
	SortOrder  string
	StartIndex int
	Count      *int
	// Cursor selects cursor paging (RFC 9865): "" for the first page, else a
	// nextCursor or previousCursor of an earlier page. Nil pages by index.
	Cursor     *string
	Projection Projection
}

// ListPage is one page of a list response (RFC 7644 §3.4.2, RFC 9865).
type ListPage struct {
	TotalResults int
	StartIndex   int
	Resources    []*Resource
	// Cursor paging: set when the page was asked for by cursor.
	Cursor         bool
	NextCursor     string
	PreviousCursor string
}

// List returns the page of resources matching q.
func (s *Service) List(ctx context.Context, tenantID string, kind ResourceKind, q ListQuery) (*ListPage, error) {
	opts := store.ListOptions{StartIndex: max(q.StartIndex, 1), Count: s.limits.DefaultCount, ReadOptions: s.readOpts(kind, q.Projection)}
	if q.Count != nil {
		opts.Count = min(max(*q.Count, 0), s.limits.MaxResults)
	}
	if q.Filter != "" {
		f, err := s.parseListFilter(ctx, q.Filter)
		if err != nil {
			return nil, err
		}
		opts.Filter = f
	}
	if q.SortBy != "" {
		p, err := parseSortBy(q.SortBy)
		if err != nil {
			return nil, err
		}
		opts.SortBy = &p
	}
	switch strings.ToLower(q.SortOrder) {
	case "", "ascending":
	case "descending":
		opts.Descending = true
	default:
		return nil, errorf(KindInvalidValue, "sortOrder must be ascending or descending, not %q", q.SortOrder)
	}
	if q.Cursor != nil {
		if q.StartIndex > 1 {
			return nil, errorf(KindInvalidValue, "use either startIndex or cursor, not both")
		}
		opts.Seek = &store.Seek{}
		if *q.Cursor != "" {
			seek, total, err := s.decodeCursor(ctx, tenantID, kind, q, *q.Cursor)
			if err != nil {
				return nil, err
			}
			opts.Seek, opts.KnownTotal = seek, total
		}
	}
	// An index page in creation order that continues a walk this process served
	// is read by keyset (see pageHints), and a filtered one takes the walk's
	// total from the hint instead of counting the matches again.
	hinted := q.Cursor == nil && q.SortBy == "" && opts.Count > 0
	continued := false
	key := hintKey{tenant: tenantID, kind: kind, filter: q.Filter, index: opts.StartIndex}
	if hinted && opts.StartIndex > 1 {
		if pos, total, ok := s.hints.take(key); ok {
			opts.Seek, continued = &store.Seek{After: &pos}, true
			if opts.Filter != nil {
				opts.KnownTotal = &total
			}
		}
	}
	res, err := s.st.List(ctx, tenantID, kind, opts)
	if err != nil {
		return nil, AsError(err)
	}
	if continued && opts.KnownTotal != nil {
		// The walk's total was counted on its first page. Its end says what the
		// total is now; a page reaching past the old total means matches were
		// added since, and they are counted again.
		end := opts.StartIndex - 1 + len(res.Resources)
		switch {
		case !res.More:
			res.Total = end
		case end >= res.Total:
			recount := opts
			recount.Seek, recount.KnownTotal, recount.Count = nil, nil, 0
			n, err := s.st.List(ctx, tenantID, kind, recount)
			if err != nil {
				return nil, AsError(err)
			}
			res.Total = max(n.Total, end+1)
		}
	}
	if hinted && len(res.Resources) > 0 && opts.StartIndex+len(res.Resources) <= res.Total {
		last := res.Resources[len(res.Resources)-1]
		key.index = opts.StartIndex + len(res.Resources)
		s.hints.put(key, store.Position{Created: last.Created, ID: last.ID}, res.Total)
	}
	page := &ListPage{TotalResults: res.Total, StartIndex: opts.StartIndex, Resources: make([]*Resource, 0, len(res.Resources))}
	if q.Cursor != nil {
		page.Cursor = true
		if page.NextCursor, page.PreviousCursor, err = s.cursors(ctx, tenantID, kind, q, opts.Seek, res); err != nil {
			return nil, err
		}
	}
	for _, sr := range res.Resources {
		r, err := s.types.fromStore(sr)
		if err != nil {
			return nil, AsError(err)
		}
		page.Resources = append(page.Resources, r)
	}
	return page, nil
}

// Replace replaces a resource with body (RFC 7644 §3.5.1). ifMatch, when not empty,
// is the If-Match header: the write happens only if the stored version matches,
// checked inside the write's transaction.
func (s *Service) Replace(ctx context.Context, tenantID string, kind ResourceKind, id string, body map[string]any, ifMatch string, proj Projection) (*Resource, error) {
	nid, err := s.resourceID(kind, id)
	if err != nil {
		return nil, err
	}
	w, err := s.types.parseResource(kind, body, QuirksFrom(ctx), true)
	if err != nil {
		return nil, err
	}
	var hash string
	if w.password != nil {
		if hash, err = s.hash(*w.password); err != nil {
			return nil, err
		}
	}
	written, err := s.st.Update(ctx, tenantID, kind, nid, func(cur *store.Resource) ([]store.MemberChange, error) {
		if err := checkIfMatch(ifMatch, cur.Version); err != nil {
			return nil, err
		}
		if w.password == nil {
			// A body equal to what is stored changes nothing: the version and
			// modification time stay, as for a PATCH that changes nothing.
			before, err := decodeDoc(cur.Doc)
			if err != nil {
				return nil, err
			}
			if sameValue(before, w.doc) {
				if kind == GroupKind {
					return []store.MemberChange{{Replace: true, Add: w.members}}, store.ErrUnchanged
				}
				return nil, store.ErrUnchanged
			}
		}
		if err := w.columns(cur); err != nil {
			return nil, err
		}
		if err := s.checkSize(cur); err != nil {
			return nil, err
		}
		if w.password != nil {
			cur.PasswordHash = hash
		}
		if kind == GroupKind {
			return []store.MemberChange{{Replace: true, Add: w.members}}, nil
		}
		return nil, nil
	})
	if err != nil {
		return nil, s.writeErr(kind, id, err)
	}
	return s.answer(ctx, written, proj)
}

// answer is the resource a write produced: the row exactly as this write left it
// (so a concurrent later write cannot leak into the answer or its ETag), with the
// derived attributes (members, groups) the projection needs read afterwards.
func (s *Service) answer(ctx context.Context, written *store.Resource, proj Projection) (*Resource, error) {
	ro := s.readOpts(written.Kind, proj)
	if (ro.Members && !written.Loaded.Members) || (ro.Groups && !written.Loaded.Groups) {
		cur, err := s.st.Get(ctx, written.TenantID, written.Kind, written.ID, ro)
		if err != nil {
			return nil, s.notFound(written.Kind, written.ID, err)
		}
		written.Members, written.Groups = cur.Members, cur.Groups
	}
	r, err := s.types.fromStore(written)
	if err != nil {
		return nil, AsError(err)
	}
	return r, nil
}

func (s *Service) writeErr(kind ResourceKind, id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return s.notFound(kind, id, err)
	}
	return s.conflict(kind, err)
}

// Delete removes a resource (RFC 7644 §3.6) and every membership naming it.
func (s *Service) Delete(ctx context.Context, tenantID string, kind ResourceKind, id, ifMatch string) error {
	nid, err := s.resourceID(kind, id)
	if err != nil {
		return err
	}
	var want int64
	if ifMatch != "" && strings.TrimSpace(ifMatch) != "*" {
		cur, err := s.st.Get(ctx, tenantID, kind, nid, store.ReadOptions{})
		if err != nil {
			return s.notFound(kind, id, err)
		}
		if err := checkIfMatch(ifMatch, cur.Version); err != nil {
			return err
		}
		want = cur.Version
	}
	if err := s.st.Delete(ctx, tenantID, kind, nid, want); err != nil {
		return s.writeErr(kind, id, err)
	}
	return nil
}

// checkIfMatch implements If-Match (RFC 7232 §3.1, RFC 7644 §3.14) with weak
// comparison: "*" or any listed tag equal to the current version passes.
func checkIfMatch(header string, version int64) error {
	if strings.TrimSpace(header) == "" {
		return nil
	}
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return nil
		}
		tag = strings.TrimPrefix(tag, "W/")
		if strings.Trim(tag, `"`) == strconv.FormatInt(version, 10) {
			return nil
		}
	}
	return errorf(KindPrecondition, "If-Match %s does not match the current version W/\"%d\"; read the resource again and retry", header, version)
}

func (s *Service) hash(password string) (string, error) {
	if err := s.CheckPassword(password); err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.limits.BcryptCost)
	if err != nil {
		if errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return "", errorf(KindInvalidValue, "password is longer than 72 bytes")
		}
		return "", AsError(err)
	}
	return string(h), nil
}

// parseSortBy reads a sortBy attribute path (RFC 7644 §3.4.2.3).
func parseSortBy(raw string) (p filter.AttributePath, err error) {
	defer func() {
		if recover() != nil {
			err = errorf(KindInvalidValue, "sortBy %q is not an attribute path", raw)
		}
	}()
	p, perr := filter.ParseAttrPath([]byte(strings.TrimSpace(raw)))
	if perr != nil {
		return p, &Error{Kind: KindInvalidValue, Detail: fmt.Sprintf("sortBy %q is not an attribute path such as name.familyName", raw), Err: perr}
	}
	return p, nil
}

// Search lists several resource types as one list (RFC 7644 §3.4.3, a query at the
// service provider root): the matching resources of the first kind, then those of
// the next, paged together. A filter or sortBy naming an attribute one kind lacks
// leaves that kind out or in its default order; a filter no kind understands is
// refused.
func (s *Service) Search(ctx context.Context, tenantID string, kinds []ResourceKind, q ListQuery) (*ListPage, error) {
	if len(kinds) == 1 {
		return s.List(ctx, tenantID, kinds[0], q)
	}
	if q.Cursor != nil {
		return nil, errorf(KindInvalidValue, "cursor paging lists one resource type; query /Users or /Groups")
	}
	count := s.limits.DefaultCount
	if q.Count != nil {
		count = min(max(*q.Count, 0), s.limits.MaxResults)
	}
	page := &ListPage{StartIndex: max(q.StartIndex, 1), Resources: []*Resource{}}
	start, remaining := page.StartIndex, count
	var firstErr error
	answered := 0
	for _, kind := range kinds {
		kq := q
		if len(kinds) > 1 && q.SortBy != "" && !s.sortable(kind, q.SortBy) {
			kq.SortBy = ""
		}
		n := remaining
		kq.StartIndex, kq.Count = start, &n
		p, err := s.List(ctx, tenantID, kind, kq)
		if err != nil {
			if AsError(err).Kind == KindInvalidFilter && len(kinds) > 1 {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			return nil, err
		}
		answered++
		page.TotalResults += p.TotalResults
		page.Resources = append(page.Resources, p.Resources...)
		remaining -= len(p.Resources)
		start = max(1, start-p.TotalResults)
	}
	if answered == 0 && firstErr != nil {
		return nil, firstErr
	}
	return page, nil
}

func (s *Service) sortable(kind ResourceKind, sortBy string) bool {
	p, err := parseSortBy(sortBy)
	if err != nil {
		return true // let List report it
	}
	_, _, ok := s.types.Of(kind).Resolve(p.URI(), p.AttributeName, p.SubAttributeName())
	return ok
}

// RecordQuirks adds a request's applied quirks to its token's counts.
func (s *Service) RecordQuirks(ctx context.Context, tenantID, tokenID string, counts map[string]int) error {
	if err := s.st.RecordQuirks(ctx, tenantID, tokenID, counts); err != nil {
		return AsError(err)
	}
	return nil
}

// QuirkReport returns how often each token of the named tenant needed each quirk.
func (s *Service) QuirkReport(ctx context.Context, tenant string) ([]store.QuirkCount, error) {
	tn, err := tenantNamed(ctx, s.st, tenant)
	if err != nil {
		return nil, err
	}
	out, err := s.st.QuirkCounts(ctx, tn.ID)
	if err != nil {
		return nil, AsError(err)
	}
	return out, nil
}
