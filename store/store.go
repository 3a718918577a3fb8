package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scim2/filter-parser/v2"
)

// Sentinel errors returned by every backend. Callers test them with errors.Is.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrPrecondition = errors.New("precondition failed")
	// ErrInvalidFilter wraps a filter the backend cannot compile; see FilterError.
	ErrInvalidFilter = errors.New("invalid filter")
	// ErrInvalidMember is returned when a group member names no resource of the tenant.
	ErrInvalidMember = errors.New("invalid member")
	// ErrUnavailable is returned when the database cannot be reached.
	ErrUnavailable = errors.New("database unavailable")
	// ErrBadSettings is in the chain of the error for a tenant whose stored
	// settings cannot be decoded; the error names the tenant. Such a tenant's
	// requests are refused rather than served under default settings.
	ErrBadSettings = errors.New("tenant settings cannot be decoded")
)

// FilterError explains why a filter was refused; it wraps ErrInvalidFilter.
type FilterError struct{ Msg string }

func (e *FilterError) Error() string { return "invalid filter: " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalidFilter) hold.
func (e *FilterError) Unwrap() error { return ErrInvalidFilter }

// Filterf returns a FilterError with a formatted message.
func Filterf(format string, args ...any) error {
	return &FilterError{Msg: fmt.Sprintf(format, args...)}
}

// SortError explains why a sortBy was refused.
type SortError struct{ Msg string }

func (e *SortError) Error() string { return "invalid sortBy: " + e.Msg }

// MemberError names the member values that matched no user or group of the tenant;
// it wraps ErrInvalidMember.
type MemberError struct {
	// Missing holds each unknown value once, in the order the members were given.
	Missing []string
	// Self is set when a group was asked to contain itself.
	Self bool
}

func (e *MemberError) Error() string {
	if e.Self {
		return "a group cannot be a member of itself"
	}
	return fmt.Sprintf("no user or group with id %q", e.Missing)
}

// Unwrap makes errors.Is(err, ErrInvalidMember) hold.
func (e *MemberError) Unwrap() error { return ErrInvalidMember }

// Kind is a SCIM resource type name.
type Kind string

// The resource kinds scimd stores.
const (
	KindUser  Kind = "User"
	KindGroup Kind = "Group"
)

// Tenant is an organisation; every resource belongs to exactly one.
type Tenant struct {
	ID       string
	Name     string
	Created  time.Time
	Settings TenantSettings
}

// TenantSettings are what a tenant's compatibility routes consult. The zero value is
// the default under which every route works on a new tenant.
type TenantSettings struct {
	// FreeAccess on disables partner provisioning (everyone may use the product).
	FreeAccess bool `json:"free_access,omitempty"`
	// DisabledFamilies lists compatibility route families turned off.
	DisabledFamilies []string `json:"disabled_families,omitempty"`
	// NoSignIn marks a tenant without sign-in configured.
	NoSignIn bool `json:"no_sign_in,omitempty"`
	// NoOnboardingUser marks a tenant whose onboarding API user is not set up.
	NoOnboardingUser bool `json:"no_onboarding_user,omitempty"`
	// ResultURLHosts, when not empty, lists the hosts a result_url may name.
	ResultURLHosts []string `json:"result_url_hosts,omitempty"`
	// MailFrom, when set, is the From address of the tenant's messages.
	MailFrom string `json:"mail_from,omitempty"`
	// Templates overrides the built-in message templates, by message kind.
	Templates map[string]MessageTemplate `json:"templates,omitempty"`
	// RateLimit and RateBurst, when above 0, replace the server's --rate-limit and
	// --rate-burst for the tenant's tokens; NoRateLimit exempts them from any limit.
	RateLimit   float64 `json:"rate_limit,omitempty"`
	RateBurst   int     `json:"rate_burst,omitempty"`
	NoRateLimit bool    `json:"no_rate_limit,omitempty"`
}

// MessageTemplate is a tenant's override of one message kind's templates: Subject
// and Text are text/template sources, HTML an html/template source. An empty
// field keeps the built-in template of that part.
type MessageTemplate struct {
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
}

// Token is an API token. The secret itself is never stored, only its SHA-256.
type Token struct {
	ID        string
	TenantID  string
	Hash      []byte
	Scopes    []string
	Created   time.Time
	RevokedAt *time.Time
	// UserID is the user of the tenant the token acts as at /Me (RFC 7644 §3.11);
	// "" when it is bound to none.
	UserID string
	// Profile names the client dialect the token's requests are read with
	// ("" is the default).
	Profile string
	// Sandbox marks a read-only token: it may not change data through any route.
	Sandbox bool
	// ExpiresAt, when set, is when the token stops working.
	ExpiresAt *time.Time
	// LastUsedAt is the last use recorded with TouchToken, which keeps it only
	// to within an interval; nil when none was.
	LastUsedAt *time.Time
	// TenantSettings and TenantName are the settings and name of the token's
	// tenant, read by TokenByHash in the same query as the token (zero elsewhere).
	TenantSettings TenantSettings
	TenantName     string
}

// Resource is one stored SCIM resource. Doc holds the resource's attributes as JSON
// (canonical attribute names, no id, meta, schemas, members, groups or password);
// the other fields are the indexed columns and the server-managed values.
type Resource struct {
	TenantID     string
	Kind         Kind
	ID           string
	ExternalID   *string
	UserName     string // Users only
	DisplayName  *string
	Active       *bool // Users only
	Doc          []byte
	PasswordHash string // Users only; never part of Doc
	Version      int64
	Created      time.Time
	LastModified time.Time

	// Members of a Group, filled when ReadOptions.Members is set, and written by Create.
	Members []Member
	// Outbox holds messages to queue in the same transaction as a Create or an
	// Update of this resource; the store fills their ids and times.
	Outbox []Message
	// Groups a User belongs to, filled when ReadOptions.Groups is set.
	Groups []GroupRef
	// Loaded says which derived data the store filled: a user read for an update
	// comes with its groups, so the answer needs no second read.
	Loaded ReadOptions
}

// Member is one membership of a group (RFC 7643 §4.2 "members").
type Member struct {
	Value   string
	Type    Kind   // set by the store from the member's own row
	Display string // set by the store on read
}

// GroupRef is one group a user belongs to (RFC 7643 §4.1.2 "groups").
type GroupRef struct {
	Value   string
	Display string
}

// ReadOptions select the derived data to load with a resource.
type ReadOptions struct {
	Members bool
	Groups  bool
}

// ListOptions select, order and page a list (RFC 7644 §3.4.2).
type ListOptions struct {
	Filter filter.Expression
	// SortBy names the attribute to order by (RFC 7644 §3.4.2.3): resources without
	// a value come last ascending and first descending, ties are broken by id. Nil
	// orders by creation.
	SortBy     *filter.AttributePath
	Descending bool
	StartIndex int // 1-based; ignored when Seek is set
	Count      int
	// Seek selects keyset paging (RFC 9865 cursors): the page after (or before) a
	// position, stable under concurrent inserts.
	Seek *Seek
	// KnownTotal, when set on a filtered list, is the number of matches the
	// caller learned on an earlier page of the same walk: the store returns it
	// as Total instead of counting the matches again, so that a walk through a
	// large filtered list does not count it once per page. An unfiltered list's
	// total comes from counters kept with every write and ignores it.
	KnownTotal *int
	ReadOptions
}

// Seek is a keyset page request.
type Seek struct {
	// After is the position of the last resource seen; nil starts at the beginning.
	After *Position
	// Backward asks for the page that ends just before After, still returned in
	// the list's order.
	Backward bool
}

// Message is one queued message to a user (set-password link, invitation, email
// verification); the delivery worker sends it.
type Message struct {
	ID        string
	TenantID  string
	UserID    string
	Kind      string
	Recipient string
	// Payload is the message's data as JSON (e.g. the result_url).
	Payload  []byte
	Status   string // pending, sent, failed
	Attempts int
	Created  time.Time
	// NextAttempt is when the message is next due (or, while claimed, when the
	// claim's lease ends); SentAt is when it was sent.
	NextAttempt time.Time
	SentAt      *time.Time
	// LastError says why the last attempt failed; MessageID is the Message-ID
	// header it was sent with.
	LastError string
	MessageID string
}

// The states of an outbox message.
const (
	MessagePending = "pending"
	MessageSent    = "sent"
	MessageFailed  = "failed"
)

// MessageOutcome is what one delivery attempt of a claimed message came to.
type MessageOutcome struct {
	ID string
	// Status is MessageSent, MessageFailed (final) or MessagePending (tried again
	// at NextAttempt).
	Status      string
	NextAttempt time.Time
	LastError   string
	MessageID   string
	// Uncounted gives the claim's attempt back: nothing was tried.
	Uncounted bool
}

// Link is a single-use link a message carries (set a password, verify an email).
// Only the SHA-256 of its secret is stored.
type Link struct {
	Hash     []byte
	TenantID string
	UserID   string
	// Message is the id of the outbox message the link was sent with.
	Message string
	Kind    string
	// Purpose groups the kinds whose links do the same thing (set a password,
	// verify an email); a user has at most one usable link per purpose.
	Purpose string
	Created time.Time
	Expires time.Time
	UsedAt  *time.Time
	// RevokedAt is when a newer link of the same user and purpose was issued, or
	// another was used; nil while it was not.
	RevokedAt *time.Time
}

// OutboxStore delivers outbox messages and keeps the links they carry.
type OutboxStore interface {
	// ClaimMessages claims up to limit pending messages of any tenant that are due
	// and that no live claim holds, oldest due first, and adds one to their
	// Attempts. Concurrent claims never return the same message; on PostgreSQL
	// they skip each other's locked rows instead of waiting.
	ClaimMessages(ctx context.Context, limit int, c Claim) ([]Message, error)
	// FinishMessage records the outcome of a message the claim token holds and
	// reports whether it did; a message the token no longer holds is left alone.
	FinishMessage(ctx context.Context, token string, o MessageOutcome) (bool, error)
	// Message returns one message of the tenant.
	Message(ctx context.Context, tenantID, id string) (Message, error)
	// MessageByID returns a message of any tenant (for the administration
	// commands).
	MessageByID(ctx context.Context, id string) (Message, error)
	// RetryMessage makes a failed (or pending) message due at once with its
	// attempts reset; a sent or unknown one is ErrNotFound.
	RetryMessage(ctx context.Context, id string) error
	// CreateLink stores a link and, in the same transaction, revokes the unused
	// links of the same user and purpose that other messages carry.
	CreateLink(ctx context.Context, l Link) error
	// Link finds a link by hash, used or not; ErrNotFound if there is none.
	Link(ctx context.Context, hash []byte) (Link, error)
	// UseLink marks an unused, unrevoked link that has not expired at at used,
	// together with every other link of its message, revokes the unused links of
	// the same user and purpose that other messages carry, all in one
	// transaction, and returns it; otherwise ErrNotFound.
	UseLink(ctx context.Context, hash []byte, at time.Time) (Link, error)
	// ReleaseLink undoes UseLink (the use and the revocations it made) when what
	// the link was for could not be done.
	ReleaseLink(ctx context.Context, l Link) error
}

// Task is a tenant's background job: a batch of writes (such as an onboarding user
// import) run entry by entry, by the request that queued it or by a worker.
type Task struct {
	// ID is the task's internal id; Number is the one clients see: 1, 2, 3 … in the
	// order the tenant's tasks were created, never reused and never shared by two of
	// the tenant's tasks, however many replicas create them at once.
	ID       string
	Number   int64
	TenantID string
	Type     string
	Total    int
	Created  time.Time
	// LastCheckedIn is when a worker last recorded progress; nil before any.
	LastCheckedIn *time.Time
	// Completed is when the last entry was finished; nil while any is pending.
	Completed *time.Time
	// Done and Failed count the finished entries; filled on read.
	Done, Failed int
}

// The states of a task entry.
const (
	TaskPending = "pending"
	TaskDone    = "done"
	TaskFailed  = "failed"
)

// TaskEntry is one unit of a task's work.
type TaskEntry struct {
	TaskID   string
	TenantID string
	// Seq is the entry's position in its task, from 0.
	Seq int
	// Key names the resource the entry writes (a userName); GivenName and
	// FamilyName are shown with its progress.
	Key, GivenName, FamilyName string
	// ResourceID is the id the resource an entry creates gets. It is fixed when the
	// entry is queued, so a run repeated after a crash recognises its own create.
	ResourceID string
	// Op and Payload say what to do; the store keeps them as given.
	Op      string
	Payload []byte
	// Status is TaskPending, TaskDone or TaskFailed; a failed entry says why.
	Status    string
	ErrorCode string
	ErrorMsg  string
	// Attempts counts the claims of the entry.
	Attempts int
}

// Claim is a lease on task entries: entries claimed with Token are left to it for
// Lease, after which another claim may take them over. Only the holder of an
// entry's current claim can finish it.
type Claim struct {
	Token string
	Lease time.Duration
}

// QuirkCount is how often one token's requests used one non-standard form.
type QuirkCount struct {
	TokenID  string
	Profile  string
	Quirk    string
	Count    int64
	LastSeen time.Time
}

// Position is a resource's place in a list's order: its sort key and id.
type Position struct {
	Created time.Time // the default order
	Null    bool      // sorted by an attribute the resource has no value for
	Value   string    // the (case-folded) value of the sort attribute
	ID      string
}

// ListResult is one page of a list and the number of all matching resources.
type ListResult struct {
	Total     int
	Resources []*Resource
	// With Seek: the position of each resource, and whether more resources lie
	// beyond the page in the direction asked.
	Positions []Position
	More      bool
}

// MemberChange is one step of how an update changes a group's memberships, so that
// one member more or less touches one row rather than the whole list. Within a step,
// Replace runs first, then Remove, RemoveWhere and Add.
type MemberChange struct {
	// Replace drops every membership first.
	Replace bool
	Add     []Member
	// Remove drops memberships by member id.
	Remove []string
	// RemoveWhere drops the memberships matching a filter over the member
	// sub-attributes value and type (e.g. members[value eq "x"]).
	RemoveWhere filter.Expression
}

// Empty reports whether the change does nothing.
func (c *MemberChange) Empty() bool {
	return (!c.Replace && len(c.Add) == 0 && len(c.Remove) == 0 && c.RemoveWhere == nil)
}

// Updater changes cur in place; for a group it may return membership changes,
// applied in order. The store writes the result only if the resource still has the
// version cur was read at (under a row lock, or by a conditional write), and may
// run the updater again on a fresher read, so it must depend on nothing but cur.
// Returning an error aborts the update and leaves everything unchanged.
//
// Returning ErrUnchanged instead says that fn left cur as it was read (and queued
// no message): the store applies the membership changes returned with it and, when
// they change no membership either, writes nothing at all: no new version or
// modification time, no audit event (RFC 7644 §3.5.2.1: a change that changes
// nothing leaves the resource as it was). Update then returns the resource as read.
type Updater func(cur *Resource) ([]MemberChange, error)

// ErrUnchanged is returned by an Updater that left the resource as it was read
// (see Updater); Update itself never returns it.
var ErrUnchanged = errors.New("unchanged")

// Store is the persistence scimd needs. Every method is scoped to one tenant where it
// takes a tenant id, and every write is one transaction.
type Store interface {
	Migrate(ctx context.Context) error
	Ping(ctx context.Context) error
	Close() error

	CreateTenant(ctx context.Context, name string) (Tenant, error)
	TenantByName(ctx context.Context, name string) (Tenant, error)
	TenantByID(ctx context.Context, id string) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)
	CreateToken(ctx context.Context, t Token) (Token, error)
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	CountTokens(ctx context.Context, tenantID string) (int, error)
	// ListTokens returns the tenant's tokens, revoked and expired ones included,
	// oldest first, without their hashes.
	ListTokens(ctx context.Context, tenantID string) ([]Token, error)
	// TouchToken records at as the last use of the tenant's token id unless the
	// recorded one is less than every before at, and reports whether it wrote: a
	// conditional write, so replicas together write at most once per interval.
	TouchToken(ctx context.Context, tenantID, id string, at time.Time, every time.Duration) (bool, error)
	// RevokeUserTokens revokes every token bound to a user.
	RevokeUserTokens(ctx context.Context, tenantID, userID string) error
	// RevokeToken revokes one token of the tenant; ErrNotFound when it has none of
	// that id. Revoking a revoked token is no error.
	RevokeToken(ctx context.Context, tenantID, id string) error
	// TokenEpoch returns a number that changes whenever any token or tenant changes
	// in a way its principal shows (not on last-use writes), from any process.
	TokenEpoch(ctx context.Context) (int64, error)

	// Create inserts r (and, for a group, its Members) and fills ID if empty,
	// Version, Created and LastModified. A userName taken case-insensitively in the
	// tenant is ErrConflict; a member naming nothing is a MemberError.
	Create(ctx context.Context, r *Resource) error
	Get(ctx context.Context, tenantID string, kind Kind, id string, opts ReadOptions) (*Resource, error)
	// EachMember calls fn for each member of the tenant's group groupID, in the
	// order Get lists them, reading them in chunks of bounded size so that a group
	// of any size is served in bounded memory and without holding a database
	// connection while fn runs. Members added or removed during the walk may or may
	// not show; no member present throughout is skipped or repeated. A group
	// without members, or none of that id, calls fn never; an error from fn stops
	// the walk and is returned.
	EachMember(ctx context.Context, tenantID, groupID string, fn func(Member) error) error
	List(ctx context.Context, tenantID string, kind Kind, opts ListOptions) (ListResult, error)
	// Update loads the resource, runs fn on it, bumps Version and LastModified, and
	// writes it back together with fn's membership changes and its audit event,
	// atomically and only over the version fn saw (see Updater).
	Update(ctx context.Context, tenantID string, kind Kind, id string, fn Updater) (*Resource, error)
	// SetTenantSettings replaces a tenant's settings.
	SetTenantSettings(ctx context.Context, tenantID string, s TenantSettings) error
	// Outbox lists a tenant's queued messages, oldest first.
	Outbox(ctx context.Context, tenantID string) ([]Message, error)

	// Secret returns the server-wide random secret called name, the same on every
	// replica sharing the database.
	Secret(ctx context.Context, name string) ([]byte, error)
	// RecordQuirks adds counts of the non-standard input a token's requests needed
	// rewritten; QuirkCounts reports them for a tenant.
	RecordQuirks(ctx context.Context, tenantID, tokenID string, counts map[string]int) error
	QuirkCounts(ctx context.Context, tenantID string) ([]QuirkCount, error)

	// Delete removes the resource and every membership naming it. A non-zero
	// ifVersion that does not match is ErrPrecondition.
	Delete(ctx context.Context, tenantID string, kind Kind, id string, ifVersion int64) error

	TaskStore
	AuditStore
}

// TaskStore keeps background tasks and their entries.
type TaskStore interface {
	// CreateTask stores t and its entries in one transaction, filling t's ID,
	// Number (the tenant's next), Created and Total and each entry's TaskID,
	// TenantID and Seq. Entries are
	// stored pending (or failed, when given so with their reason); with claim set
	// the pending ones are stored already claimed by it. A task with nothing
	// pending is stored completed.
	CreateTask(ctx context.Context, t *Task, entries []TaskEntry, claim *Claim) error
	// Task returns a task of the tenant with its counts; another tenant's is
	// ErrNotFound.
	Task(ctx context.Context, tenantID, id string) (Task, error)
	// TaskByNumber returns the tenant's task with that Number, as Task does;
	// another tenant's is ErrNotFound.
	TaskByNumber(ctx context.Context, tenantID string, number int64) (Task, error)
	// TaskEntries returns a task's entries in order.
	TaskEntries(ctx context.Context, tenantID, taskID string) ([]TaskEntry, error)
	// ClaimTaskEntries claims up to limit pending entries that no live claim
	// holds, of the task taskID or (with "") of any tenant's task, oldest task
	// first, and adds one to their Attempts. Concurrent claims never return the
	// same entry; on PostgreSQL they skip each other's locked rows instead of
	// waiting.
	ClaimTaskEntries(ctx context.Context, taskID string, limit int, c Claim) ([]TaskEntry, error)
	// FinishTaskEntries records the outcome of entries held by the claim token: a
	// done or failed entry is final, a pending one is released to be claimed again
	// at once. Entries the token no longer holds are left alone. It stamps the
	// tasks' LastCheckedIn, completes those with nothing left pending, and returns
	// how many entries it recorded.
	FinishTaskEntries(ctx context.Context, token string, entries []TaskEntry) (int, error)
}

// Expired reports whether ctx has ended or its deadline has passed. A network
// operation bounded by the deadline can fail with a timeout a moment before the
// context's own timer ends it, so ctx.Err() alone may still be nil then.
func Expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}
