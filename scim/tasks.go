package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// Bulk user tasks: a batch of user creates or updates, stored with its entries before
// anything runs, then run entry by entry through the same use cases as single SCIM
// writes: by the request that queued it (Run) or by a background worker (Work, Step)
// that any replica may run. Entries are claimed with a lease; only the current
// holder records an outcome, and a create is given its user's id when it is queued,
// so running an entry again after a crash recognises its own earlier create instead
// of reporting the user as taken. Every entry is therefore applied once.

// Task types.
const (
	TaskImportUsers = "bulk_user_import"
	TaskUpdateUsers = "bulk_user_update"
)

// The operations of task entries.
const (
	taskOpCreate = "create"
	taskOpPatch  = "patch"
)

// TaskStore is what tasks need from persistence; store.Store satisfies it.
type TaskStore interface {
	store.TaskStore
}

// TaskOptions tune task processing; zero fields take the defaults.
type TaskOptions struct {
	// Batch is how many entries one worker step claims (default 100).
	Batch int
	// Lease is how long a claim keeps its entries from other workers (default two
	// minutes); entries of a worker that died are taken over after it.
	Lease time.Duration
	// Poll is how long an idle worker waits before looking for work (default 2s).
	Poll time.Duration
	// MaxAttempts bounds how often an entry that keeps failing for a transient
	// reason (the database unavailable) is tried before it is failed (default 5).
	MaxAttempts int
}

func (o TaskOptions) withDefaults() TaskOptions {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Lease <= 0 {
		o.Lease = 2 * time.Minute
	}
	if o.Poll <= 0 {
		o.Poll = 2 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	return o
}

// Tasks runs bulk user tasks over a store and a Service.
type Tasks struct {
	st  TaskStore
	svc *Service
	log *zap.Logger
	o   TaskOptions
}

// NewTasks returns the task use cases and worker over st, writing users through svc.
func NewTasks(st TaskStore, svc *Service, log *zap.Logger, o TaskOptions) *Tasks {
	return &Tasks{st: st, svc: svc, log: log.Named("tasks"), o: o.withDefaults()}
}

// Tasks returns the task use cases over the service's own store, or nil when that
// store keeps no tasks.
func (s *Service) Tasks(o TaskOptions) *Tasks {
	st, ok := s.st.(TaskStore)
	if !ok {
		return nil
	}
	return NewTasks(st, s, s.log, o)
}

// UserWrite is one entry of a bulk user task: the create of a User, or a patch of
// the existing User whose userName is UserName.
type UserWrite struct {
	// UserName identifies the user: the created user's userName, or the one to patch.
	UserName string
	// GivenName and FamilyName are shown with the entry's progress.
	GivenName, FamilyName string
	// Create is the User to create (a SCIM body); Messages are queued with it in the
	// same transaction. Nil makes the entry a patch.
	Create   map[string]any
	Messages []Message
	// Patch holds the operations applied to the existing user; none only checks
	// that it exists.
	Patch []PatchOp
	// Refused, when set, fails the entry without running it: the caller found it
	// invalid.
	Refused *Error
}

// TaskStatus is a task's progress. Entries are filled when asked for.
type TaskStatus struct {
	// ID is internal; Number is the task's number within its tenant (1, 2, 3 …),
	// the id clients are given.
	ID, TenantID, Type string
	Number             int64
	Total              int
	// Done and Failed count the finished entries; the rest are pending.
	Done, Failed  int
	Created       time.Time
	LastCheckedIn *time.Time
	Completed     *time.Time
	Entries       []TaskEntryStatus
}

// TaskEntryStatus is one entry's progress.
type TaskEntryStatus struct {
	Seq                             int
	UserName, GivenName, FamilyName string
	// Create is set for a create, unset for a patch.
	Create bool
	// State is pending, done or failed; Err says why an entry failed.
	State string
	Err   *Error
}

// The states of an entry.
const (
	TaskPending = store.TaskPending
	TaskDone    = store.TaskDone
	TaskFailed  = store.TaskFailed
)

// taskPayload is what an entry stores to run later.
type taskPayload struct {
	Create   map[string]any `json:"create,omitempty"`
	Messages []taskMessage  `json:"messages,omitempty"`
	Patch    []taskPatchOp  `json:"patch,omitempty"`
	// Actor is who queued the entry, for the audit events of a worker's run.
	Actor *taskActor `json:"actor,omitempty"`
}

// taskActor is the part of a request's store.Actor that its task's entries keep.
type taskActor struct {
	TokenID    string `json:"token_id,omitempty"`
	ClientAddr string `json:"client_addr,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	Route      string `json:"route,omitempty"`
	Status     int    `json:"status,omitempty"`
}

func newTaskActor(a *store.Actor) *taskActor {
	if a == nil {
		return nil
	}
	return &taskActor{TokenID: a.TokenID, ClientAddr: a.ClientAddr, RequestID: a.RequestID, Route: a.Route, Status: a.Status}
}

func (a *taskActor) actor(tenantID string) *store.Actor {
	return &store.Actor{TenantID: tenantID, TokenID: a.TokenID, ClientAddr: a.ClientAddr, RequestID: a.RequestID, Route: a.Route, Status: a.Status}
}

type taskMessage struct {
	Kind      string          `json:"kind"`
	Recipient string          `json:"recipient"`
	Payload   json.RawMessage `json:"payload,omitempty"`
}

type taskPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path,omitempty"`
	Value any    `json:"value,omitempty"`
}

// entries turns writes into store entries, each create with its user's id and the
// actor of the request that queues them.
func taskEntries(a *store.Actor, writes []UserWrite) ([]store.TaskEntry, error) {
	out := make([]store.TaskEntry, len(writes))
	ta := newTaskActor(a)
	for i, w := range writes {
		e := store.TaskEntry{Key: w.UserName, GivenName: w.GivenName, FamilyName: w.FamilyName, Op: taskOpPatch}
		p := taskPayload{Actor: ta}
		if w.Create != nil {
			e.Op, e.ResourceID, p.Create = taskOpCreate, uuid.NewString(), w.Create
			for _, m := range w.Messages {
				p.Messages = append(p.Messages, taskMessage{Kind: m.Kind, Recipient: m.Recipient, Payload: m.Payload})
			}
		}
		for _, op := range w.Patch {
			p.Patch = append(p.Patch, taskPatchOp{Op: op.Op, Path: op.Path, Value: op.Value})
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, &Error{Kind: KindInvalidValue, Detail: "entry " + strconv.Itoa(i) + " cannot be stored", Err: err}
		}
		e.Payload = raw
		if w.Refused != nil {
			e.Status, e.ErrorCode, e.ErrorMsg = store.TaskFailed, kindCode(w.Refused.Kind), w.Refused.Detail
		}
		out[i] = e
	}
	return out, nil
}

// Submit stores a task of writes for the background worker and returns at once.
func (t *Tasks) Submit(ctx context.Context, tenantID, typ string, writes []UserWrite) (*TaskStatus, error) {
	entries, err := taskEntries(store.ActorFrom(ctx), writes)
	if err != nil {
		return nil, err
	}
	task := store.Task{TenantID: tenantID, Type: typ}
	if err := t.st.CreateTask(ctx, &task, entries, nil); err != nil {
		return nil, AsError(err)
	}
	t.auditRefusedEntries(ctx, entries)
	return taskStatus(task, entries), nil
}

// Run stores a task of writes already claimed by this call, runs its entries and
// returns its status with entries. Should the database fail transiently midway, Run
// releases what it has not run to the background worker and returns the status so
// far with finished false.
func (t *Tasks) Run(ctx context.Context, tenantID, typ string, writes []UserWrite) (st *TaskStatus, finished bool, err error) {
	entries, err := taskEntries(store.ActorFrom(ctx), writes)
	if err != nil {
		return nil, false, err
	}
	claim := store.Claim{Token: uuid.NewString(), Lease: t.o.Lease}
	task := store.Task{TenantID: tenantID, Type: typ}
	if err := t.st.CreateTask(ctx, &task, entries, &claim); err != nil {
		return nil, false, AsError(err)
	}
	t.auditRefusedEntries(ctx, entries)
	finished = true
	var out []store.TaskEntry
	for i, e := range entries {
		if e.Status != store.TaskPending {
			continue
		}
		if !finished || ctx.Err() != nil {
			e.Status = store.TaskPending // released to the worker
			finished = false
		} else if r, ok := t.runEntry(context.WithoutCancel(ctx), e); ok {
			e = r
		} else {
			finished = false
		}
		entries[i] = e
		out = append(out, e)
		if len(out) >= t.o.Batch {
			if err := t.finish(ctx, claim.Token, out); err != nil {
				return nil, false, err
			}
			out = out[:0]
		}
	}
	if err := t.finish(ctx, claim.Token, out); err != nil {
		return nil, false, err
	}
	st, err = t.Status(context.WithoutCancel(ctx), tenantID, task.ID, true)
	return st, finished && err == nil, err
}

func (t *Tasks) finish(ctx context.Context, token string, entries []store.TaskEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if _, err := t.st.FinishTaskEntries(context.WithoutCancel(ctx), token, entries); err != nil {
		return AsError(err)
	}
	return nil
}

// Status returns a task of the tenant, with its entries when asked; another
// tenant's task is KindNotFound.
func (t *Tasks) Status(ctx context.Context, tenantID, id string, withEntries bool) (*TaskStatus, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errorf(KindNotFound, "task %q not found", id)
	}
	task, err := t.st.Task(ctx, tenantID, normID(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{Kind: KindNotFound, Detail: "task " + strconv.Quote(id) + " not found", Err: err}
	}
	if err != nil {
		return nil, AsError(err)
	}
	return t.status(ctx, task, withEntries)
}

// StatusByNumber returns the tenant's task with that number, as Status does; a
// number no task of the tenant has is KindNotFound.
func (t *Tasks) StatusByNumber(ctx context.Context, tenantID string, number int64, withEntries bool) (*TaskStatus, error) {
	task, err := t.st.TaskByNumber(ctx, tenantID, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{Kind: KindNotFound, Detail: "task " + strconv.FormatInt(number, 10) + " not found", Err: err}
	}
	if err != nil {
		return nil, AsError(err)
	}
	return t.status(ctx, task, withEntries)
}

func (t *Tasks) status(ctx context.Context, task store.Task, withEntries bool) (*TaskStatus, error) {
	var entries []store.TaskEntry
	if withEntries {
		var err error
		if entries, err = t.st.TaskEntries(ctx, task.TenantID, task.ID); err != nil {
			return nil, AsError(err)
		}
	}
	return taskStatus(task, entries), nil
}

func taskStatus(task store.Task, entries []store.TaskEntry) *TaskStatus {
	s := &TaskStatus{ID: task.ID, Number: task.Number, TenantID: task.TenantID, Type: task.Type, Total: task.Total, Done: task.Done, Failed: task.Failed,
		Created: task.Created, LastCheckedIn: task.LastCheckedIn, Completed: task.Completed}
	for _, e := range entries {
		es := TaskEntryStatus{Seq: e.Seq, UserName: e.Key, GivenName: e.GivenName, FamilyName: e.FamilyName, Create: e.Op == taskOpCreate, State: e.Status}
		if e.Status == store.TaskFailed {
			es.Err = &Error{Kind: codeKind(e.ErrorCode), Detail: e.ErrorMsg}
		}
		s.Entries = append(s.Entries, es)
	}
	return s
}

// Step claims up to Batch due entries of any tenant's task and runs them. It returns
// how many it claimed. Once ctx ends it runs no further entry and releases those it
// has not run; the entry running then is finished first.
func (t *Tasks) Step(ctx context.Context) (int, error) {
	claim := store.Claim{Token: uuid.NewString(), Lease: t.o.Lease}
	entries, err := t.st.ClaimTaskEntries(ctx, "", t.o.Batch, claim)
	if err != nil {
		return 0, AsError(err)
	}
	out := make([]store.TaskEntry, 0, len(entries))
	for _, e := range entries {
		switch {
		case ctx.Err() != nil:
			e.Status = store.TaskPending // released for the next worker
		case e.Attempts > t.o.MaxAttempts:
			e.Status, e.ErrorCode, e.ErrorMsg = store.TaskFailed, kindCode(KindInternal), "gave up after "+strconv.Itoa(t.o.MaxAttempts)+" attempts"
		default:
			r, ok := t.runEntry(context.WithoutCancel(ctx), e)
			if !ok {
				continue // left claimed: tried again when the lease runs out
			}
			e = r
		}
		out = append(out, e)
	}
	if err := t.finish(ctx, claim.Token, out); err != nil {
		return len(entries), err
	}
	return len(entries), nil
}

// Work runs worker steps until ctx ends, waiting Poll whenever there is nothing to
// do or a step failed.
func (t *Tasks) Work(ctx context.Context) {
	t.log.Info("task worker started", zap.Int("batch", t.o.Batch), zap.Duration("poll", t.o.Poll))
	defer t.log.Info("task worker stopped")
	runWorker(ctx, t.log, "task", t.o.Poll, t.Step)
}

// runEntry runs one claimed entry and returns it finished. ok is false when it failed
// for a transient reason and should be tried again later.
func (t *Tasks) runEntry(ctx context.Context, e store.TaskEntry) (out store.TaskEntry, ok bool) {
	var p taskPayload
	d := json.NewDecoder(bytes.NewReader(e.Payload))
	d.UseNumber()
	err := d.Decode(&p)
	if err == nil && p.Actor != nil && store.ActorFrom(ctx) == nil {
		// A worker's run: its changes are recorded as those of the request that
		// queued the entry.
		ctx = store.WithActor(ctx, p.Actor.actor(e.TenantID))
	}
	if err == nil {
		switch e.Op {
		case taskOpCreate:
			err = t.create(ctx, e, p)
		case taskOpPatch:
			err = t.patch(ctx, e, p)
		default:
			err = errorf(KindInvalidValue, "unknown task operation %q", e.Op)
		}
	}
	if err == nil {
		e.Status = store.TaskDone
		return e, true
	}
	se := AsError(err)
	switch se.Kind {
	case KindUnavailable:
		t.log.Warn("task entry deferred", zap.String("task_id", e.TaskID), zap.Int("seq", e.Seq), zap.Error(err))
		return e, false
	case KindInternal:
		t.log.Error("task entry failed", zap.String("task_id", e.TaskID), zap.Int("seq", e.Seq), zap.Error(err))
		e.Status, e.ErrorCode, e.ErrorMsg = store.TaskFailed, kindCode(KindInternal), "internal error"
		t.svc.auditEntryRefused(ctx, e, KindInternal)
		return e, true
	}
	e.Status, e.ErrorCode, e.ErrorMsg = store.TaskFailed, kindCode(se.Kind), se.Detail
	t.svc.auditEntryRefused(ctx, e, se.Kind)
	return e, true
}

// create creates the entry's user with the id fixed at queueing. A uniqueness
// conflict where a user with that id exists is this entry's own earlier create.
func (t *Tasks) create(ctx context.Context, e store.TaskEntry, p taskPayload) error {
	msgs := make([]Message, len(p.Messages))
	for i, m := range p.Messages {
		msgs[i] = Message{Kind: m.Kind, Recipient: m.Recipient, Payload: m.Payload}
	}
	s := t.svc
	w, err := s.types.parseResource(UserKind, p.Create, QuirksFrom(ctx), true)
	if err != nil {
		return err
	}
	sr := &store.Resource{TenantID: e.TenantID, Kind: UserKind, ID: e.ResourceID, Outbox: msgs}
	if err := w.columns(sr); err != nil {
		return AsError(err)
	}
	if w.password != nil {
		if sr.PasswordHash, err = s.hash(*w.password); err != nil {
			return err
		}
	}
	err = s.st.Create(ctx, sr)
	if errors.Is(err, store.ErrConflict) {
		if _, gerr := s.st.Get(ctx, e.TenantID, UserKind, e.ResourceID, store.ReadOptions{}); gerr == nil {
			return nil
		}
	}
	if err != nil {
		return s.conflict(UserKind, err)
	}
	return nil
}

// patch applies the entry's operations to the user whose userName is its key.
func (t *Tasks) patch(ctx context.Context, e store.TaskEntry, p taskPayload) error {
	one := 1
	page, err := t.svc.List(ctx, e.TenantID, UserKind, ListQuery{Filter: "userName eq " + strconv.Quote(e.Key), Count: &one})
	if err != nil {
		return err
	}
	if len(page.Resources) == 0 {
		return errorf(KindNotFound, "no user with userName %q", e.Key)
	}
	if len(p.Patch) == 0 {
		return nil
	}
	ops := make([]PatchOp, len(p.Patch))
	for i, op := range p.Patch {
		ops[i] = PatchOp{Op: op.Op, Path: op.Path, Value: op.Value}
	}
	_, err = t.svc.Patch(ctx, e.TenantID, UserKind, page.Resources[0].ID, ops, "", Projection{})
	return err
}

// kindCodes name error kinds in stored task entries (RFC 7644 §3.12 scimType where
// there is one).
var kindCodes = map[ErrorKind]string{
	KindInternal: "internal", KindInvalidValue: "invalidValue", KindInvalidSyntax: "invalidSyntax",
	KindInvalidFilter: "invalidFilter", KindInvalidPath: "invalidPath", KindNoTarget: "noTarget",
	KindMutability: "mutability", KindTooMany: "tooMany", KindUniqueness: "uniqueness", KindNotFound: "notFound",
	KindPrecondition: "precondition", KindUnauthorized: "unauthorized", KindForbidden: "forbidden",
	KindUnavailable: "unavailable", KindInvalidCursor: "invalidCursor", KindExpiredCursor: "expiredCursor",
	KindTooManyRequests: "tooManyRequests",
}

func kindCode(k ErrorKind) string {
	if c, ok := kindCodes[k]; ok {
		return c
	}
	return kindCodes[KindInternal]
}

func codeKind(code string) ErrorKind {
	for k, c := range kindCodes {
		if c == code {
			return k
		}
	}
	return KindInternal
}

// auditRefusedEntries records the entries a task was queued with already failed
// (refused by the caller), which never run.
func (t *Tasks) auditRefusedEntries(ctx context.Context, entries []store.TaskEntry) {
	for _, e := range entries {
		if e.Status == store.TaskFailed {
			t.svc.auditEntryRefused(ctx, e, codeKind(e.ErrorCode))
		}
	}
}
