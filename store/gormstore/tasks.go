package gormstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// taskEntryCols are the columns of task_entries read back, in taskEntryRow's order.
const taskEntryCols = "task_id, seq, tenant_id, entry_key, given_name, family_name, resource_id, op, payload, status, error_code, error_msg, attempts"

type taskEntryRow struct {
	TaskID, TenantID                string
	Seq                             int
	EntryKey, GivenName, FamilyName string
	ResourceID, Op, Payload, Status string
	ErrorCode, ErrorMsg             string
	Attempts                        int
}

func (r taskEntryRow) entry() store.TaskEntry {
	return store.TaskEntry{TaskID: r.TaskID, TenantID: r.TenantID, Seq: r.Seq, Key: r.EntryKey, GivenName: r.GivenName,
		FamilyName: r.FamilyName, ResourceID: r.ResourceID, Op: r.Op, Payload: []byte(r.Payload), Status: r.Status,
		ErrorCode: r.ErrorCode, ErrorMsg: r.ErrorMsg, Attempts: r.Attempts}
}

// entriesPerInsert bounds the rows of one multi-row INSERT (15 parameters each).
const entriesPerInsert = 200

// CreateTask stores a task and its entries in one transaction.
func (s *Store) CreateTask(ctx context.Context, t *store.Task, entries []store.TaskEntry, claim *store.Claim) error {
	t.ID, t.Created, t.Total = newID(), now(), len(entries)
	t.Done, t.Failed, t.LastCheckedIn, t.Completed = 0, 0, nil, nil
	token, due := "", t.Created
	if claim != nil {
		token, due = claim.Token, t.Created.Add(claim.Lease)
	}
	pending := 0
	for i := range entries {
		e := &entries[i]
		e.TaskID, e.TenantID, e.Seq, e.Attempts = t.ID, t.TenantID, i, 0
		if e.Status != store.TaskFailed {
			e.Status, e.ErrorCode, e.ErrorMsg = store.TaskPending, "", ""
			pending++
		} else {
			t.Failed++
		}
		if len(e.Payload) == 0 {
			e.Payload = []byte("{}")
		}
	}
	if pending == 0 {
		t.Completed = &t.Created
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		// The tenant's counter row is locked until the transaction ends: a concurrent
		// creation in the same tenant waits here and then takes the next number.
		var numbers []int64
		if err := tx.Raw(`INSERT INTO task_numbers (tenant_id, n) VALUES (?, 1)
			ON CONFLICT (tenant_id) DO UPDATE SET n = task_numbers.n + 1 RETURNING n`, t.TenantID).Scan(&numbers).Error; err != nil {
			return s.writeErr(err)
		}
		if len(numbers) != 1 {
			return fmt.Errorf("task number: %d rows", len(numbers))
		}
		t.Number = numbers[0]
		if err := tx.Exec(`INSERT INTO tasks (id, number, tenant_id, type, total, created, completed) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Number, t.TenantID, t.Type, t.Total, t.Created, t.Completed).Error; err != nil {
			return s.writeErr(err)
		}
		for lo := 0; lo < len(entries); lo += entriesPerInsert {
			part := entries[lo:min(lo+entriesPerInsert, len(entries))]
			var sb strings.Builder
			args := make([]any, 0, len(part)*15)
			sb.WriteString(`INSERT INTO task_entries (task_id, seq, tenant_id, entry_key, given_name, family_name, resource_id, op, payload,
				status, claim, due, attempts, error_code, error_msg) VALUES `)
			for i, e := range part {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)")
				c := token
				if e.Status != store.TaskPending {
					c = ""
				}
				args = append(args, e.TaskID, e.Seq, e.TenantID, e.Key, e.GivenName, e.FamilyName, e.ResourceID, e.Op,
					string(e.Payload), e.Status, c, due, e.ErrorCode, e.ErrorMsg)
			}
			if err := tx.Exec(sb.String(), args...).Error; err != nil {
				return s.writeErr(err)
			}
		}
		return nil
	})
}

// Task returns a task of the tenant with the counts of its finished entries.
func (s *Store) Task(ctx context.Context, tenantID, id string) (store.Task, error) {
	return s.task(ctx, "tenant_id = ? AND id = ?", tenantID, id)
}

// TaskByNumber returns the tenant's task with that number, as Task does.
func (s *Store) TaskByNumber(ctx context.Context, tenantID string, number int64) (store.Task, error) {
	return s.task(ctx, "tenant_id = ? AND number = ?", tenantID, number)
}

func (s *Store) task(ctx context.Context, where string, args ...any) (store.Task, error) {
	db := s.db.WithContext(ctx)
	var rows []struct {
		ID, TenantID, Type       string
		Number                   int64
		Total                    int
		Created                  time.Time
		LastCheckedIn, Completed *time.Time
	}
	if err := db.Raw(`SELECT id, number, tenant_id, type, total, created, last_checked_in, completed FROM tasks WHERE `+where,
		args...).Scan(&rows).Error; err != nil {
		return store.Task{}, s.readErr(err)
	}
	if len(rows) == 0 {
		return store.Task{}, store.ErrNotFound
	}
	r := rows[0]
	t := store.Task{ID: r.ID, Number: r.Number, TenantID: r.TenantID, Type: r.Type, Total: r.Total, Created: r.Created.UTC(),
		LastCheckedIn: utcPtr(r.LastCheckedIn), Completed: utcPtr(r.Completed)}
	var counts []struct {
		Status string
		N      int
	}
	if err := db.Raw(`SELECT status, count(*) AS n FROM task_entries WHERE task_id = ? GROUP BY status`, r.ID).Scan(&counts).Error; err != nil {
		return store.Task{}, s.readErr(err)
	}
	for _, c := range counts {
		switch c.Status {
		case store.TaskDone:
			t.Done = c.N
		case store.TaskFailed:
			t.Failed = c.N
		}
	}
	return t, nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// TaskEntries returns the entries of a task of the tenant, in order.
func (s *Store) TaskEntries(ctx context.Context, tenantID, taskID string) ([]store.TaskEntry, error) {
	var rows []taskEntryRow
	if err := s.db.WithContext(ctx).Raw(`SELECT `+taskEntryCols+` FROM task_entries WHERE tenant_id = ? AND task_id = ? ORDER BY seq`,
		tenantID, taskID).Scan(&rows).Error; err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.TaskEntry, len(rows))
	for i, r := range rows {
		out[i] = r.entry()
	}
	return out, nil
}

// ClaimTaskEntries locks the due pending entries it selects, skipping rows another
// claim has locked (FOR UPDATE SKIP LOCKED where the database locks rows; SQLite's
// immediate transaction holds the whole database instead), and leases them to c.
func (s *Store) ClaimTaskEntries(ctx context.Context, taskID string, limit int, c store.Claim) ([]store.TaskEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	lock := s.d.ForUpdate()
	if lock != "" {
		lock += " SKIP LOCKED"
	}
	var out []store.TaskEntry
	err := s.tx(ctx, func(tx *gorm.DB) error {
		out = nil
		t := now()
		where, args := "status = ? AND due <= ?", []any{store.TaskPending, t}
		if taskID != "" {
			where, args = "task_id = ? AND "+where, append([]any{taskID}, args...)
		}
		var rows []taskEntryRow
		if err := tx.Raw(`SELECT `+taskEntryCols+` FROM task_entries WHERE `+where+` ORDER BY due, task_id, seq LIMIT ?`+lock,
			append(args, limit)...).Scan(&rows).Error; err != nil {
			return s.readErr(err)
		}
		bySeq := map[string][]int{}
		var tasks []string
		for _, r := range rows {
			if _, ok := bySeq[r.TaskID]; !ok {
				tasks = append(tasks, r.TaskID)
			}
			bySeq[r.TaskID] = append(bySeq[r.TaskID], r.Seq)
		}
		for _, id := range tasks {
			seqs := bySeq[id]
			for lo := 0; lo < len(seqs); lo += chunk {
				if err := tx.Exec(`UPDATE task_entries SET claim = ?, due = ?, attempts = attempts + 1 WHERE task_id = ? AND seq IN ?`,
					c.Token, t.Add(c.Lease), id, seqs[lo:min(lo+chunk, len(seqs))]).Error; err != nil {
					return s.writeErr(err)
				}
			}
		}
		for _, r := range rows {
			e := r.entry()
			e.Attempts++
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// FinishTaskEntries records outcomes under the claim token. It locks the tasks
// first, in id order, so that two claims finishing the last entries of one task
// run one after the other and the second sees that nothing is pending any more.
func (s *Store) FinishTaskEntries(ctx context.Context, token string, entries []store.TaskEntry) (int, error) {
	if len(entries) == 0 || token == "" {
		return 0, nil
	}
	var tasks []string
	for _, e := range entries {
		if !slices.Contains(tasks, e.TaskID) {
			tasks = append(tasks, e.TaskID)
		}
	}
	slices.Sort(tasks)
	var n int
	err := s.tx(ctx, func(tx *gorm.DB) error {
		n = 0
		t := now()
		if lock := s.d.ForUpdate(); lock != "" {
			var held []string
			if err := tx.Raw(`SELECT id FROM tasks WHERE id IN ? ORDER BY id`+lock, tasks).Scan(&held).Error; err != nil {
				return s.readErr(err)
			}
		}
		// Done entries of a task are recorded together; the others one by one.
		done := map[string][]int{}
		for _, e := range entries {
			var res *gorm.DB
			switch e.Status {
			case store.TaskDone:
				done[e.TaskID] = append(done[e.TaskID], e.Seq)
				continue
			case store.TaskFailed:
				res = tx.Exec(`UPDATE task_entries SET status = ?, error_code = ?, error_msg = ?, claim = '' WHERE task_id = ? AND seq = ? AND claim = ? AND status = ?`,
					store.TaskFailed, e.ErrorCode, e.ErrorMsg, e.TaskID, e.Seq, token, store.TaskPending)
			default:
				res = tx.Exec(`UPDATE task_entries SET claim = '', due = ? WHERE task_id = ? AND seq = ? AND claim = ? AND status = ?`,
					t, e.TaskID, e.Seq, token, store.TaskPending)
			}
			if res.Error != nil {
				return s.writeErr(res.Error)
			}
			if e.Status == store.TaskFailed {
				n += int(res.RowsAffected)
			}
		}
		for _, id := range tasks {
			seqs := done[id]
			for lo := 0; lo < len(seqs); lo += chunk {
				res := tx.Exec(`UPDATE task_entries SET status = ?, error_code = '', error_msg = '', claim = '' WHERE task_id = ? AND seq IN ? AND claim = ? AND status = ?`,
					store.TaskDone, id, seqs[lo:min(lo+chunk, len(seqs))], token, store.TaskPending)
				if res.Error != nil {
					return s.writeErr(res.Error)
				}
				n += int(res.RowsAffected)
			}
			if err := tx.Exec(`UPDATE tasks SET last_checked_in = ? WHERE id = ?`, t, id).Error; err != nil {
				return s.writeErr(err)
			}
			if err := tx.Exec(`UPDATE tasks SET completed = ? WHERE id = ? AND completed IS NULL
				AND NOT EXISTS (SELECT 1 FROM task_entries WHERE task_id = ? AND status = ?)`, t, id, id, store.TaskPending).Error; err != nil {
				return s.writeErr(err)
			}
		}
		return nil
	})
	return n, err
}
