package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go), the driver scimd uses
)

// rawDB issues the scenarios' work straight to scimd's tables with prepared
// statements, in a tenant of its own, as the baseline every scimd figure is divided
// by. The statements are the ones store/gormstore runs for the same work, without
// anything SCIM adds around them.
type rawDB struct {
	db     *sql.DB
	kind   string // "sqlite" or "postgres"
	tenant string
	group  string
	// naiveTenant holds the naive stack's users (naive.go), beside scimd's and the
	// baseline's.
	naiveTenant string

	insUser, lookup, get, update, page0, pageN, getGroup *sql.Stmt
	insMember, delMember, delMemberships, delUser        *sql.Stmt
}

const rawUserCols = "tenant_id, id, external_id, user_name, display_name, active, data, password_hash, version, created, last_modified"

// openRaw opens the database scimd uses: sqlite://PATH or postgres://….
func openRaw(dsn string, conns int) (*rawDB, error) {
	r := &rawDB{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite://"):
		r.kind = "sqlite"
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		// Times as scimd writes them, so that keyset pages compare like for like.
		q.Set("_time_format", "sqlite")
		q.Set("_txlock", "immediate")
		r.db, err = sql.Open("sqlite", "file:"+strings.TrimPrefix(dsn, "sqlite://")+"?"+q.Encode())
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		r.kind = "postgres"
		r.db, err = sql.Open("pgx", dsn)
	default:
		return nil, fmt.Errorf("-database %q: use sqlite://PATH or postgres://…", dsn)
	}
	if err != nil {
		return nil, err
	}
	r.db.SetMaxOpenConns(conns)
	r.db.SetMaxIdleConns(conns)
	return r, nil
}

// rebind turns ? placeholders into PostgreSQL's $n.
func (r *rawDB) rebind(q string) string {
	if r.kind != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// setup creates the baseline tenant and its group and prepares every statement.
func (r *rawDB) setup(ctx context.Context, runID string) error {
	if err := r.db.PingContext(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	r.tenant, r.group, r.naiveTenant = uuid.NewString(), uuid.NewString(), uuid.NewString()
	for _, t := range [][2]string{{r.tenant, "scimbench-baseline-" + runID}, {r.naiveTenant, "scimbench-naive-" + runID}} {
		if _, err := r.db.ExecContext(ctx, r.rebind(`INSERT INTO tenants (id, name, created) VALUES (?, ?, ?)`), t[0], t[1], now); err != nil {
			return fmt.Errorf("create tenant %s (is the schema migrated?): %w", t[1], err)
		}
	}
	if _, err := r.db.ExecContext(ctx, r.rebind(`INSERT INTO "groups" (tenant_id, id, display_name, display_name_lower, data, version, created, last_modified)
		VALUES (?, ?, ?, ?, ?, 1, ?, ?)`), r.tenant, r.group, "baseline", "baseline", `{"displayName":"baseline"}`, now, now); err != nil {
		return err
	}
	stmts := []struct {
		st **sql.Stmt
		q  string
	}{
		{&r.insUser, `INSERT INTO users (tenant_id, id, external_id, user_name, user_name_lower, display_name, display_name_lower, active, data, password_hash, version, created, last_modified)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', 1, ?, ?)`},
		{&r.lookup, `SELECT ` + rawUserCols + ` FROM users WHERE tenant_id = ? AND user_name_lower = ?`},
		{&r.get, `SELECT ` + rawUserCols + ` FROM users WHERE tenant_id = ? AND id = ?`},
		{&r.update, `UPDATE users SET active = ?, data = ?, version = version + 1, last_modified = ? WHERE tenant_id = ? AND id = ?`},
		{&r.page0, `SELECT ` + rawUserCols + ` FROM users WHERE tenant_id = ? ORDER BY created, id LIMIT 101`},
		{&r.pageN, `SELECT ` + rawUserCols + ` FROM users WHERE tenant_id = ? AND (created > ? OR (created = ? AND id > ?)) ORDER BY created, id LIMIT 101`},
		{&r.getGroup, `SELECT tenant_id, id, external_id, display_name, data, version, created, last_modified FROM "groups" WHERE tenant_id = ? AND id = ?`},
		{&r.insMember, `INSERT INTO group_members (tenant_id, group_id, member_id, member_type) VALUES (?, ?, ?, 'User')`},
		{&r.delMember, `DELETE FROM group_members WHERE tenant_id = ? AND group_id = ? AND member_id = ?`},
		{&r.delMemberships, `DELETE FROM group_members WHERE tenant_id = ? AND member_id = ?`},
		{&r.delUser, `DELETE FROM users WHERE tenant_id = ? AND id = ?`},
	}
	for _, s := range stmts {
		st, err := r.db.PrepareContext(ctx, r.rebind(s.q))
		if err != nil {
			return fmt.Errorf("prepare %.60s: %w", s.q, err)
		}
		*s.st = st
	}
	return nil
}

// rawDoc is the stored JSON document of baseline user i, shaped and sized like the
// document scimd stores for the same user.
func rawDoc(runID string, i int, id string, active bool) string {
	return fmt.Sprintf(`{"schemas":[%q,%q],"id":%q,"userName":%q,"externalId":"00u%s%07d",`+
		`"name":{"givenName":"Given%d","familyName":"Family%d","formatted":"Given%d Family%d"},"displayName":"Given%d Family%d",`+
		`"title":"Engineer","locale":"en-US","timezone":"Europe/Berlin","active":%t,`+
		`"emails":[{"value":%q,"type":"work","primary":true},{"value":"home%d@example.org","type":"home"}],`+
		`"phoneNumbers":[{"value":"+49 30 %07d","type":"work"}],`+
		`"addresses":[{"type":"work","streetAddress":"100 Universal City Plaza","locality":"Hollywood","region":"CA","postalCode":"91608","country":"US","primary":true}],`+
		`%q:{"employeeNumber":"%07d","costCenter":"CC%03d","organization":"Example Corp","division":"Operations","department":%q}}`,
		schemaUser, schemaEnterprise, id, userName(runID, i), runID, i, i, i, i, i, i, i, active, userName(runID, i), i, i,
		schemaEnterprise, i, i%500, departments[i%len(departments)])
}

func (r *rawDB) insertUser(ctx context.Context, runID string, i int, id string) error {
	return r.insertUserWith(ctx, r.insUser, r.tenant, runID, i, id)
}

func (r *rawDB) insertUserWith(ctx context.Context, ins *sql.Stmt, tenant, runID string, i int, id string) error {
	now := time.Now().UTC().Truncate(time.Microsecond)
	name := userName(runID, i)
	display := fmt.Sprintf("Given%d Family%d", i, i)
	_, err := ins.ExecContext(ctx, tenant, id, fmt.Sprintf("00u%s%07d", runID, i), name, strings.ToLower(name),
		display, strings.ToLower(display), true, rawDoc(runID, i, id, true), now, now)
	return err
}

// scanUsers reads every row of a user query and returns how many there were and
// the created and id of the last.
func scanUsers(rows *sql.Rows) (n int, created any, id string, err error) {
	defer rows.Close()
	var tenant, extID, name, display, data, pw, lastMod any
	var active any
	var version int64
	for rows.Next() {
		var c any
		if err := rows.Scan(&tenant, &id, &extID, &name, &display, &active, &data, &pw, &version, &c, &lastMod); err != nil {
			return n, nil, "", err
		}
		created = c
		n++
	}
	return n, created, id, rows.Err()
}

func (r *rawDB) lookupUser(ctx context.Context, runID string, i int) error {
	rows, err := r.lookup.QueryContext(ctx, r.tenant, strings.ToLower(userName(runID, i)))
	if err != nil {
		return err
	}
	n, _, _, err := scanUsers(rows)
	if err == nil && n != 1 {
		err = fmt.Errorf("lookup %d: %d rows", i, n)
	}
	return err
}

func (r *rawDB) getUser(ctx context.Context, id string) error {
	rows, err := r.get.QueryContext(ctx, r.tenant, id)
	if err != nil {
		return err
	}
	n, _, got, err := scanUsers(rows)
	if err == nil && (n != 1 || got != id) {
		err = fmt.Errorf("get %s: %d rows", id, n)
	}
	return err
}

func (r *rawDB) setActive(ctx context.Context, runID string, i int, id string, active bool) error {
	res, err := r.update.ExecContext(ctx, active, rawDoc(runID, i, id, active), time.Now().UTC().Truncate(time.Microsecond), r.tenant, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("update %s: %d rows", id, n)
	}
	return nil
}

// keysetPage reads the 100 users after (created, id), or the first 100 when created
// is nil, and returns the position of the last one and whether the list goes on.
func (r *rawDB) keysetPage(ctx context.Context, created any, id string) (any, string, bool, error) {
	var rows *sql.Rows
	var err error
	if created == nil {
		rows, err = r.page0.QueryContext(ctx, r.tenant)
	} else {
		rows, err = r.pageN.QueryContext(ctx, r.tenant, created, created, id)
	}
	if err != nil {
		return nil, "", false, err
	}
	// The page reads one row more than it returns, as scimd's does, to learn whether
	// the list goes on; the position is that of the 100th.
	defer rows.Close()
	var tenant, extID, name, display, data, pw, lastMod, active, c any
	var rid string
	var version int64
	n := 0
	for rows.Next() {
		if err := rows.Scan(&tenant, &rid, &extID, &name, &display, &active, &data, &pw, &version, &c, &lastMod); err != nil {
			return nil, "", false, err
		}
		n++
		if n <= 100 {
			created, id = c, rid
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", false, err
	}
	if n == 0 {
		return nil, "", false, fmt.Errorf("empty keyset page")
	}
	return created, id, n > 100, nil
}

func (r *rawDB) getBaselineGroup(ctx context.Context) error {
	var tenant, id, extID, display, data, created, lastMod any
	var version int64
	return r.getGroup.QueryRowContext(ctx, r.tenant, r.group).Scan(&tenant, &id, &extID, &display, &data, &version, &created, &lastMod)
}

// addMembers inserts memberships of the baseline group in one transaction.
func (r *rawDB) addMembers(ctx context.Context, ids []string) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	st := tx.StmtContext(ctx, r.insMember)
	for _, id := range ids {
		if _, err := st.ExecContext(ctx, r.tenant, r.group, id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (r *rawDB) addMember(ctx context.Context, id string) error {
	_, err := r.insMember.ExecContext(ctx, r.tenant, r.group, id)
	return err
}

func (r *rawDB) removeMember(ctx context.Context, id string) error {
	res, err := r.delMember.ExecContext(ctx, r.tenant, r.group, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("remove member %s: %d rows", id, n)
	}
	return nil
}

// deleteUser removes a user and the memberships naming it in one transaction.
func (r *rawDB) deleteUser(ctx context.Context, id string) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.StmtContext(ctx, r.delMemberships).ExecContext(ctx, r.tenant, id); err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, r.delUser).ExecContext(ctx, r.tenant, id); err != nil {
		return err
	}
	return tx.Commit()
}

// cleanup removes the baseline and naive tenants and everything in them.
func (r *rawDB) cleanup(ctx context.Context) error {
	for _, t := range []string{r.tenant, r.naiveTenant} {
		for _, q := range []string{
			`DELETE FROM group_members WHERE tenant_id = ?`, `DELETE FROM users WHERE tenant_id = ?`,
			`DELETE FROM "groups" WHERE tenant_id = ?`, `DELETE FROM tenants WHERE id = ?`,
		} {
			if _, err := r.db.ExecContext(ctx, r.rebind(q), t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *rawDB) close() error { return r.db.Close() }
