package gormstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/scim2/filter-parser/v2"
	"go.uber.org/zap"
	"gorm.io/gorm"

	"github.com/scimd/scimd/store"
)

// Store is the gorm-backed store.Store.
type Store struct {
	db *gorm.DB
	// prep runs statements whose SQL text comes from a small fixed set (the token
	// lookup, a read by id, lists filtered on one attribute) as prepared
	// statements, so the database parses each once per connection. Statements
	// whose text varies with the input (filters with and/or, IN lists) go through
	// db, so the statement cache cannot grow with what clients send.
	prep     *gorm.DB
	d        Dialect
	log      *zap.Logger
	timeType string
	// writeTurn holds one token while a transaction runs when the dialect is a
	// SingleWriter; nil otherwise.
	writeTurn chan struct{}
	// pool is db's connection pool, for the dialect's DirectReader.
	pool *sql.DB
}

var _ store.Store = (*Store)(nil)

// New returns a Store over db speaking dialect d.
func New(db *gorm.DB, d Dialect, log *zap.Logger) *Store {
	_, ts, _ := d.Types()
	prep := db.Session(&gorm.Session{PrepareStmt: true})
	s := &Store{db: db, prep: prep, d: d, log: log.Named("store"), timeType: ts}
	s.pool, _ = db.DB()
	if w, ok := d.(SingleWriter); ok && w.SingleWriter() {
		s.writeTurn = make(chan struct{}, 1)
	}
	return s
}

// DB returns the underlying handle, for tests and benchmarks that measure the
// database alone.
func (s *Store) DB() *gorm.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return nil
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

func newID() string { return uuid.NewString() }

// ---- tenants and tokens

type tenantRow struct {
	ID       string
	Name     string
	Created  time.Time
	Settings string
}

func (r tenantRow) tenant() (store.Tenant, error) {
	t := store.Tenant{ID: r.ID, Name: r.Name, Created: r.Created}
	var err error
	t.Settings, err = decodeSettings(r.ID, r.Name, r.Settings)
	return t, err
}

// decodeSettings reads a tenant's stored settings. A value that cannot be decoded
// is an error wrapping store.ErrBadSettings that names the tenant, never the
// defaults: those would silently drop a disabled family, a result_url host list
// or free access.
func decodeSettings(id, name, raw string) (store.TenantSettings, error) {
	var set store.TenantSettings
	if raw == "" || raw == "{}" {
		return set, nil
	}
	if err := json.Unmarshal([]byte(raw), &set); err != nil {
		return store.TenantSettings{}, fmt.Errorf("tenant %s (%q): %w: %v", id, name, store.ErrBadSettings, err)
	}
	return set, nil
}

// CreateTenant adds a tenant; a taken name is ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, name string) (store.Tenant, error) {
	t := store.Tenant{ID: newID(), Name: name, Created: now()}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO tenants (id, name, created) VALUES (?, ?, ?)`, t.ID, t.Name, t.Created).Error; err != nil {
			return s.writeErr(err)
		}
		return s.change(ctx, tx, t.ID, store.OpTenantCreate, store.AuditTenant, t.ID, nil, nil)
	})
	if err != nil {
		return store.Tenant{}, err
	}
	return t, nil
}

func (s *Store) tenantWhere(ctx context.Context, where string, arg any) (store.Tenant, error) {
	var rows []tenantRow
	if err := s.db.WithContext(ctx).Raw(`SELECT id, name, created, settings FROM tenants WHERE `+where, arg).Scan(&rows).Error; err != nil {
		return store.Tenant{}, s.readErr(err)
	}
	if len(rows) == 0 {
		return store.Tenant{}, store.ErrNotFound
	}
	return rows[0].tenant()
}

// TenantByName finds a tenant by its unique name.
func (s *Store) TenantByName(ctx context.Context, name string) (store.Tenant, error) {
	return s.tenantWhere(ctx, "name = ?", name)
}

// TenantByID finds a tenant by id.
func (s *Store) TenantByID(ctx context.Context, id string) (store.Tenant, error) {
	return s.tenantWhere(ctx, "id = ?", id)
}

// ListTenants returns every tenant by name.
func (s *Store) ListTenants(ctx context.Context) ([]store.Tenant, error) {
	var rows []tenantRow
	if err := s.db.WithContext(ctx).Raw(`SELECT id, name, created, settings FROM tenants ORDER BY name`).Scan(&rows).Error; err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.Tenant, len(rows))
	for i, r := range rows {
		t, err := r.tenant()
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

type tokenRow struct {
	ID         string
	TenantID   string
	Hash       string
	Scopes     string
	UserID     *string
	Profile    string
	Sandbox    bool
	Created    time.Time
	RevokedAt  *time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	// Settings and TenantName are the tenant's, selected with the token by
	// TokenByHash.
	Settings   string
	TenantName string
}

func (r tokenRow) token() (store.Token, error) {
	t := store.Token{ID: r.ID, TenantID: r.TenantID, Scopes: strings.Fields(r.Scopes), Profile: r.Profile, Sandbox: r.Sandbox,
		Created: r.Created, RevokedAt: r.RevokedAt, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt}
	if r.UserID != nil {
		t.UserID = *r.UserID
	}
	if r.Hash != "" {
		h, err := hex.DecodeString(r.Hash)
		if err != nil {
			return store.Token{}, fmt.Errorf("token %s: stored hash is not hexadecimal: %w", r.ID, err)
		}
		t.Hash = h
	}
	t.TenantName = r.TenantName
	var err error
	if t.TenantSettings, err = decodeSettings(r.TenantID, r.TenantName, r.Settings); err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// CreateToken stores a token's hash, scopes and the user it is bound to, if any.
func (s *Store) CreateToken(ctx context.Context, t store.Token) (store.Token, error) {
	if t.ID == "" {
		t.ID = newID()
	}
	t.Created = now()
	var userID *string
	if t.UserID != "" {
		userID = &t.UserID
	}
	if t.ExpiresAt != nil {
		at := t.ExpiresAt.UTC().Truncate(time.Microsecond)
		t.ExpiresAt = &at
	}
	// The token and its audit event (which names what the token may do, never its
	// secret or hash) are written together.
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`INSERT INTO api_tokens (id, tenant_id, hash, scopes, user_id, profile, sandbox, created, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.TenantID, fmt.Sprintf("%x", t.Hash), strings.Join(t.Scopes, " "), userID, t.Profile, t.Sandbox, t.Created, t.ExpiresAt).Error; err != nil {
			return s.writeErr(err)
		}
		return s.audit(tx, tokenEvent(ctx, t))
	})
	if err != nil {
		return store.Token{}, err
	}
	return t, nil
}

// TokenByHash finds a token by the SHA-256 of its secret, with its tenant's
// settings in the same query, so authenticating a request costs one read.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	return againIfShared(ctx, func() (store.Token, error) { return s.tokenByHash(ctx, hash) })
}

func (s *Store) tokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	// Read with database/sql's Scan: this runs on every request (see scanResources).
	rows, err := s.prep.WithContext(ctx).Raw(`SELECT k.id, k.tenant_id, k.hash, k.scopes, k.user_id, k.profile, k.sandbox, k.created, k.revoked_at,
		k.expires_at, k.last_used_at, n.settings, n.name
		FROM api_tokens AS k JOIN tenants AS n ON n.id = k.tenant_id WHERE k.hash = ?`,
		hex.EncodeToString(hash)).Rows()
	if err != nil {
		return store.Token{}, ctxErr(ctx, s.readErr(err))
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return store.Token{}, ctxErr(ctx, s.readErr(err))
		}
		return store.Token{}, store.ErrNotFound
	}
	var r tokenRow
	if err := rows.Scan(&r.ID, &r.TenantID, &r.Hash, &r.Scopes, &r.UserID, &r.Profile, &r.Sandbox, &r.Created, &r.RevokedAt,
		&r.ExpiresAt, &r.LastUsedAt, &r.Settings, &r.TenantName); err != nil {
		return store.Token{}, ctxErr(ctx, s.readErr(err))
	}
	return r.token()
}

// ListTokens returns the tenant's tokens, oldest first, without their hashes.
func (s *Store) ListTokens(ctx context.Context, tenantID string) ([]store.Token, error) {
	var rows []tokenRow
	err := s.db.WithContext(ctx).Raw(`SELECT id, tenant_id, scopes, user_id, profile, sandbox, created, revoked_at, expires_at, last_used_at
		FROM api_tokens WHERE tenant_id = ? ORDER BY created, id`, tenantID).Scan(&rows).Error
	if err != nil {
		return nil, s.readErr(err)
	}
	out := make([]store.Token, len(rows))
	for i, r := range rows {
		t, err := r.token()
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// TouchToken records at as the token's last use unless the recorded one is less
// than every before at. The condition is in the UPDATE itself, so replicas that
// race write once and a token row is written at most once per interval.
func (s *Store) TouchToken(ctx context.Context, tenantID, id string, at time.Time, every time.Duration) (bool, error) {
	at = at.UTC().Truncate(time.Microsecond)
	res := s.prep.WithContext(ctx).Exec(`UPDATE api_tokens SET last_used_at = ? WHERE tenant_id = ? AND id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`,
		at, tenantID, id, at.Add(-every))
	if res.Error != nil {
		return false, s.writeErr(res.Error)
	}
	return res.RowsAffected > 0, nil
}

// RevokeUserTokens revokes every token of the tenant bound to userID.
// Each token it revokes gets an audit event in the same transaction.
func (s *Store) RevokeUserTokens(ctx context.Context, tenantID, userID string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var ids []string
		if err := tx.Raw(`SELECT id FROM api_tokens WHERE tenant_id = ? AND user_id = ? AND revoked_at IS NULL ORDER BY id`+s.d.ForUpdate(),
			tenantID, userID).Scan(&ids).Error; err != nil {
			return s.readErr(err)
		}
		if len(ids) == 0 {
			return nil
		}
		if err := tx.Exec(`UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND id IN ?`, now(), tenantID, ids).Error; err != nil {
			return s.writeErr(err)
		}
		return s.audit(tx, revokeEvents(store.ActorFrom(ctx), tenantID, userID, ids)...)
	})
}

// CountTokens counts the tenant's tokens that are not revoked.
func (s *Store) CountTokens(ctx context.Context, tenantID string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(`SELECT count(*) FROM api_tokens WHERE tenant_id = ? AND revoked_at IS NULL`, tenantID).Scan(&n).Error
	return int(n), s.readErr(err)
}

// ---- resources

type resourceRow struct {
	TenantID     string
	ID           string
	ExternalID   *string
	UserName     string
	DisplayName  *string
	Active       *bool
	Data         string
	PasswordHash string
	Version      int64
	Created      time.Time
	LastModified time.Time
	// SortKey is selected by keyset pages only.
	SortKey *string
	// MemberOf is the JSON array of [group id, display] pairs of a user's groups,
	// selected with the row when the caller wants them (see withGroups).
	MemberOf *string
}

func (r *resourceRow) resource(kind store.Kind) (*store.Resource, error) {
	res := &store.Resource{
		TenantID: r.TenantID, Kind: kind, ID: r.ID, ExternalID: r.ExternalID, UserName: r.UserName,
		DisplayName: r.DisplayName, Active: r.Active, Doc: []byte(r.Data), PasswordHash: r.PasswordHash,
		Version: r.Version, Created: r.Created.UTC(), LastModified: r.LastModified.UTC(),
	}
	if r.MemberOf != nil {
		var pairs [][2]*string
		if err := json.Unmarshal([]byte(*r.MemberOf), &pairs); err != nil {
			return nil, fmt.Errorf("groups of user %s: %w", r.ID, err)
		}
		for _, p := range pairs {
			if p[0] == nil {
				continue
			}
			ref := store.GroupRef{Value: *p[0]}
			if p[1] != nil {
				ref.Display = *p[1]
			}
			res.Groups = append(res.Groups, ref)
		}
		res.Loaded.Groups = true
	}
	return res, nil
}

// scanResources runs a query built on selectCols (plus sort_key when sortKey) and
// reads its rows with database/sql's Scan straight into resourceRow's fields: for
// a page of 100 this is several times cheaper than gorm's reflective Scan.
func scanResources(q *gorm.DB, kind store.Kind, withGroups, sortKey bool) ([]resourceRow, error) {
	rows, err := q.Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []resourceRow
	for rows.Next() {
		var r resourceRow
		if err := rows.Scan(r.dest(kind, withGroups, sortKey)...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// dest is the scan destinations of a row selected by selectCols (plus sort_key).
func (r *resourceRow) dest(kind store.Kind, withGroups, sortKey bool) []any {
	var dest []any
	if kind == store.KindGroup {
		dest = []any{&r.TenantID, &r.ID, &r.ExternalID, &r.DisplayName, &r.Data, &r.Version, &r.Created, &r.LastModified}
	} else {
		dest = []any{&r.TenantID, &r.ID, &r.ExternalID, &r.UserName, &r.DisplayName, &r.Active, &r.Data, &r.PasswordHash,
			&r.Version, &r.Created, &r.LastModified}
		if withGroups {
			dest = append(dest, &r.MemberOf)
		}
	}
	if sortKey {
		dest = append(dest, &r.SortKey)
	}
	return dest
}

// queryResources runs q with args on db and reads its rows as scanResources
// does. A statement of fixed text (db is the prep session) outside a transaction
// goes through the dialect's DirectReader when it has one.
func (s *Store) queryResources(db *gorm.DB, q string, args []any, kind store.Kind, withGroups, sortKey bool) ([]resourceRow, error) {
	dr, ok := s.d.(DirectReader)
	if !ok || s.pool == nil || db.Statement.ConnPool != s.prep.Statement.ConnPool {
		return scanResources(db.Raw(q, args...), kind, withGroups, sortKey)
	}
	var out []resourceRow
	err := dr.ReadRows(db.Statement.Context, s.pool, q, args, func(scan func(dest ...any) error) error {
		var r resourceRow
		if err := scan(r.dest(kind, withGroups, sortKey)...); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// selectCols is the column list of kind's rows; withGroups adds, for users, their
// groups as one JSON column (a correlated subquery over the membership index), so
// a user and its groups are one statement.
func (s *Store) selectCols(kind store.Kind, withGroups bool) string {
	if kind != store.KindUser || !withGroups {
		return cols(kind)
	}
	return userCols + ", " + s.d.PairsAgg(`(SELECT m.group_id AS a, g.display_name AS b FROM group_members AS m
		JOIN "groups" AS g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
		WHERE m.tenant_id = t.tenant_id AND m.member_id = t.id ORDER BY m.group_id) AS x`, "a", "b") + " AS member_of"
}

const (
	userCols  = "t.tenant_id, t.id, t.external_id, t.user_name, t.display_name, t.active, t.data, t.password_hash, t.version, t.created, t.last_modified"
	groupCols = "t.tenant_id, t.id, t.external_id, t.display_name, t.data, t.version, t.created, t.last_modified"
)

func table(kind store.Kind) string {
	if kind == store.KindGroup {
		return `"groups"`
	}
	return "users"
}

func cols(kind store.Kind) string {
	if kind == store.KindGroup {
		return groupCols
	}
	return userCols
}

func lowerPtr(s *string) *string {
	if s == nil {
		return nil
	}
	l := strings.ToLower(*s)
	return &l
}

// Create inserts a resource and, for a group, its members, in one transaction
// (one statement where the database allows, see createOne).
func (s *Store) Create(ctx context.Context, r *store.Resource) error {
	if r.ID == "" {
		r.ID = newID()
	}
	r.Version = 1
	r.Created = now()
	r.LastModified = r.Created
	if s.chained() && len(r.Outbox) == 0 && (r.Kind != store.KindGroup || len(r.Members) == 0) {
		return s.createOne(ctx, r)
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		if r.Kind == store.KindGroup {
			err = tx.Exec(`INSERT INTO "groups" (tenant_id, id, external_id, display_name, display_name_lower, data, version, created, last_modified)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.TenantID, r.ID, r.ExternalID, r.DisplayName, lowerPtr(r.DisplayName), string(r.Doc), r.Version, r.Created, r.LastModified).Error
		} else {
			err = tx.Exec(`INSERT INTO users (tenant_id, id, external_id, user_name, user_name_lower, display_name, display_name_lower, active, data, password_hash, version, created, last_modified)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.TenantID, r.ID, r.ExternalID, r.UserName, strings.ToLower(r.UserName), r.DisplayName, lowerPtr(r.DisplayName),
				r.Active, string(r.Doc), r.PasswordHash, r.Version, r.Created, r.LastModified).Error
		}
		if err != nil {
			return s.writeErr(err)
		}
		if r.Kind == store.KindGroup && len(r.Members) > 0 {
			members, _, err := s.addMembers(tx, r.TenantID, r.ID, r.Members)
			if err != nil {
				return err
			}
			r.Members = members
		}
		if err := s.queue(tx, r); err != nil {
			return err
		}
		if err := s.countChange(tx, r.TenantID, r.Kind, 1); err != nil {
			return err
		}
		return s.change(ctx, tx, r.TenantID, store.OpCreate, string(r.Kind), r.ID, nil, version(r.Version))
	})
}

// Get returns one resource of the tenant.
func (s *Store) Get(ctx context.Context, tenantID string, kind store.Kind, id string, opts store.ReadOptions) (*store.Resource, error) {
	return againIfShared(ctx, func() (*store.Resource, error) { return s.get(ctx, tenantID, kind, id, opts) })
}

func (s *Store) get(ctx context.Context, tenantID string, kind store.Kind, id string, opts store.ReadOptions) (*store.Resource, error) {
	db := s.prep.WithContext(ctx)
	r, err := s.getRow(db, tenantID, kind, id, "", opts.Groups)
	if err != nil {
		return nil, ctxErr(ctx, err)
	}
	if err := s.fill(db, tenantID, []*store.Resource{r}, opts); err != nil {
		return nil, ctxErr(ctx, err)
	}
	return r, nil
}

// ctxErr says that a read failed because its context ended (the request's
// deadline passed, or its client left), whatever the database reported.
func ctxErr(ctx context.Context, err error) error {
	if end := ended(ctx); err != nil && end != nil && !errors.Is(err, end) {
		return fmt.Errorf("%w: %v", end, err)
	}
	return err
}

// ended is why ctx ended: its error, or context.DeadlineExceeded when its deadline
// has passed but its timer has not fired yet (store.Expired); nil while it runs.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if store.Expired(ctx) {
		return context.DeadlineExceeded
	}
	return nil
}

func (s *Store) getRow(db *gorm.DB, tenantID string, kind store.Kind, id, lock string, withGroups bool) (*store.Resource, error) {
	q := `SELECT ` + s.selectCols(kind, withGroups) + ` FROM ` + table(kind) + ` AS t WHERE t.tenant_id = ? AND t.id = ?` + lock
	rows, err := s.queryResources(db, q, []any{tenantID, id}, kind, withGroups, false)
	if err != nil {
		return nil, s.readErr(err)
	}
	if len(rows) == 0 {
		return nil, store.ErrNotFound
	}
	return rows[0].resource(kind)
}

// List returns one page of the tenant's resources matching opts.Filter, oldest first.
func (s *Store) List(ctx context.Context, tenantID string, kind store.Kind, opts store.ListOptions) (store.ListResult, error) {
	res, err := againIfShared(ctx, func() (store.ListResult, error) { return s.list(ctx, tenantID, kind, opts) })
	return res, ctxErr(ctx, err)
}

func (s *Store) list(ctx context.Context, tenantID string, kind store.Kind, opts store.ListOptions) (store.ListResult, error) {
	where := "t.tenant_id = ?"
	args := []any{tenantID}
	if opts.Filter != nil {
		cond, fargs, err := compileFilter(s.d, kind, opts.Filter)
		if err != nil {
			return store.ListResult{}, err
		}
		where += " AND (" + cond + ")"
		args = append(args, fargs...)
	}
	key, err := orderBy(s.d, kind, opts.SortBy, opts.Descending)
	if err != nil {
		return store.ListResult{}, err
	}
	if opts.Seek != nil && key.expr != "" && !key.text {
		return store.ListResult{}, &store.SortError{Msg: "cursor paging orders by creation or by a string attribute; " + opts.SortBy.String() + " is not one"}
	}
	db := s.db.WithContext(ctx)
	if _, single := opts.Filter.(*filter.AttributeExpression); opts.Filter == nil || single {
		// One attribute compared with one value compiles to one of a fixed set of
		// statements, so preparing them does not grow the cache with client input.
		db = s.prep.WithContext(ctx)
	}
	res := store.ListResult{Resources: []*store.Resource{}}
	count := func() error {
		if opts.Filter == nil {
			n, err := s.total(db, tenantID, kind)
			res.Total = n
			return err
		}
		if opts.KnownTotal != nil {
			res.Total = *opts.KnownTotal
			return nil
		}
		var total int64
		if err := db.Raw(`SELECT count(*) FROM `+table(kind)+` AS t WHERE `+where, args...).Scan(&total).Error; err != nil {
			return s.readErr(err)
		}
		res.Total = int(total)
		return nil
	}
	if opts.Seek != nil {
		if err := count(); err != nil {
			return store.ListResult{}, err
		}
		return s.seekPage(db, tenantID, kind, opts, key, where, args, res)
	}
	start := max(opts.StartIndex, 1)
	if opts.Count <= 0 {
		return res, count()
	}
	// The first page names no OFFSET: PostgreSQL plans a prepared statement with
	// a parameter in OFFSET anew on every execution (it never settles on a
	// generic plan), which for a userName lookup cost three times the read itself.
	q := `SELECT ` + s.selectCols(kind, opts.Groups) + ` FROM ` + table(kind) + ` AS t WHERE ` + where + ` ORDER BY ` + key.order(false) + ` LIMIT ?`
	qargs := append(args[:len(args):len(args)], opts.Count)
	if start > 1 {
		q += ` OFFSET ?`
		qargs = append(qargs, start-1)
	}
	rows, err := s.queryResources(db, q, qargs, kind, opts.Groups, false)
	if err != nil {
		return store.ListResult{}, s.readErr(err)
	}
	// A page that came back short, and not empty, ends the list: the rows before it
	// and on it are all there are (RFC 7644 §3.4.2.4 totalResults), so the count
	// is known without counting. Otherwise count.
	if len(rows) > 0 && len(rows) < opts.Count {
		res.Total = start - 1 + len(rows)
	} else if err := count(); err != nil {
		return store.ListResult{}, err
	}
	for i := range rows {
		r, err := rows[i].resource(kind)
		if err != nil {
			return store.ListResult{}, err
		}
		res.Resources = append(res.Resources, r)
	}
	if err := s.fill(db, tenantID, res.Resources, opts.ReadOptions); err != nil {
		return store.ListResult{}, err
	}
	return res, nil
}

// seekPage reads one keyset page: the rows after (or before) a position, one more
// than asked to learn whether the list goes on.
func (s *Store) seekPage(db *gorm.DB, tenantID string, kind store.Kind, opts store.ListOptions, key sortKey,
	where string, args []any, res store.ListResult) (store.ListResult, error) {
	back := opts.Seek.Backward
	if p := opts.Seek.After; p != nil {
		cond, sargs := key.seek(*p, back)
		where += " AND " + cond
		args = append(args, sargs...)
	}
	sortCol := "NULL"
	if key.expr != "" {
		sortCol = key.expr
	}
	q := `SELECT ` + s.selectCols(kind, opts.Groups) + `, ` + sortCol + ` AS sort_key FROM ` + table(kind) + ` AS t WHERE ` + where +
		` ORDER BY ` + key.order(back) + ` LIMIT ?`
	rows, err := s.queryResources(db, q, append(args, opts.Count+1), kind, opts.Groups, true)
	if err != nil {
		return store.ListResult{}, s.readErr(err)
	}
	if len(rows) > opts.Count {
		res.More = true
		rows = rows[:opts.Count]
	}
	if back {
		slices.Reverse(rows)
	}
	for i := range rows {
		r, err := rows[i].resource(kind)
		if err != nil {
			return store.ListResult{}, err
		}
		res.Resources = append(res.Resources, r)
		pos := store.Position{Created: r.Created, ID: r.ID}
		if key.expr != "" {
			pos.Null = rows[i].SortKey == nil
			if !pos.Null {
				pos.Value = *rows[i].SortKey
			}
		}
		res.Positions = append(res.Positions, pos)
	}
	if err := s.fill(db, tenantID, res.Resources, opts.ReadOptions); err != nil {
		return store.ListResult{}, err
	}
	return res, nil
}

// EachMember walks a group's members row by row (see store.Store.EachMember), with
// the same display values and order as fill.
func (s *Store) EachMember(ctx context.Context, tenantID, groupID string, fn func(store.Member) error) error {
	after := ""
	for {
		// No member has been passed to fn when the first chunk fails to read.
		chunk, err := againIfShared(ctx, func() ([]store.Member, error) { return s.readMembers(ctx, tenantID, groupID, after) })
		if err != nil {
			return ctxErr(ctx, s.readErr(err))
		}
		for _, m := range chunk {
			if err := fn(m); err != nil {
				return err
			}
		}
		if len(chunk) < memberChunk {
			return nil
		}
		after = chunk[len(chunk)-1].Value
	}
}

// memberChunk is how many members EachMember reads at a time. Reading in chunks,
// rather than keeping one statement open for the whole walk, hands the connection
// (and on SQLite the read snapshot) back between chunks, so a client that reads a
// 100,000-member group slowly holds no database connection while its answer is
// being written. A variable for the tests.
var memberChunk = 1000

// readMembers reads the members of groupID after member id after (from the first
// when empty), at most memberChunk of them, in member id order.
func (s *Store) readMembers(ctx context.Context, tenantID, groupID, after string) ([]store.Member, error) {
	rows, err := s.prep.WithContext(ctx).Raw(`SELECT m.member_id, m.member_type,
			COALESCE(u.display_name, u.user_name, g.display_name) AS display
		FROM group_members AS m
		LEFT JOIN users AS u ON m.member_type = 'User' AND u.tenant_id = m.tenant_id AND u.id = m.member_id
		LEFT JOIN "groups" AS g ON m.member_type = 'Group' AND g.tenant_id = m.tenant_id AND g.id = m.member_id
		WHERE m.tenant_id = ? AND m.group_id = ? AND m.member_id > ? ORDER BY m.member_id LIMIT ?`, tenantID, groupID, after, memberChunk).Rows()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]store.Member, 0, 64)
	for rows.Next() {
		var id, typ string
		var display *string
		if err := rows.Scan(&id, &typ, &display); err != nil {
			return nil, err
		}
		m := store.Member{Value: id, Type: store.Kind(typ)}
		if display != nil {
			m.Display = *display
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// chunk is how many values go into one IN list, well under every database's
// parameter limit.
const chunk = 500

// fill loads members of groups and groups of users for rs (those the row query
// did not already bring), one query per chunk.
func (s *Store) fill(db *gorm.DB, tenantID string, rs []*store.Resource, opts store.ReadOptions) error {
	if len(rs) == 0 {
		return nil
	}
	kind := rs[0].Kind
	byID := make(map[string]*store.Resource, len(rs))
	ids := make([]string, 0, len(rs))
	for _, r := range rs {
		if (kind == store.KindUser && (!opts.Groups || r.Loaded.Groups)) || (kind == store.KindGroup && !opts.Members) {
			continue
		}
		byID[r.ID] = r
		ids = append(ids, r.ID)
		r.Loaded = opts
	}
	if len(ids) > 1 {
		// An IN list of n ids is a different statement for every n: not prepared.
		db = s.db.WithContext(db.Statement.Context)
	}
	for lo := 0; lo < len(ids); lo += chunk {
		part := ids[lo:min(lo+chunk, len(ids))]
		switch {
		case kind == store.KindGroup && opts.Members:
			var rows []struct {
				GroupID, MemberID, MemberType string
				Display                       *string
			}
			err := db.Raw(`SELECT m.group_id, m.member_id, m.member_type,
					COALESCE(u.display_name, u.user_name, g.display_name) AS display
				FROM group_members AS m
				LEFT JOIN users AS u ON m.member_type = 'User' AND u.tenant_id = m.tenant_id AND u.id = m.member_id
				LEFT JOIN "groups" AS g ON m.member_type = 'Group' AND g.tenant_id = m.tenant_id AND g.id = m.member_id
				WHERE m.tenant_id = ? AND m.group_id IN ? ORDER BY m.group_id, m.member_id`, tenantID, part).Scan(&rows).Error
			if err != nil {
				return s.readErr(err)
			}
			for _, row := range rows {
				m := store.Member{Value: row.MemberID, Type: store.Kind(row.MemberType)}
				if row.Display != nil {
					m.Display = *row.Display
				}
				g := byID[row.GroupID]
				g.Members = append(g.Members, m)
			}
		case kind == store.KindUser && opts.Groups:
			var rows []struct {
				MemberID, GroupID string
				Display           *string
			}
			err := db.Raw(`SELECT m.member_id, m.group_id, g.display_name AS display
				FROM group_members AS m JOIN "groups" AS g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
				WHERE m.tenant_id = ? AND m.member_id IN ? ORDER BY m.member_id, m.group_id`, tenantID, part).Scan(&rows).Error
			if err != nil {
				return s.readErr(err)
			}
			for _, row := range rows {
				ref := store.GroupRef{Value: row.GroupID}
				if row.Display != nil {
					ref.Display = *row.Display
				}
				u := byID[row.MemberID]
				u.Groups = append(u.Groups, ref)
			}
		}
	}
	return nil
}

// Update runs fn on the locked, current resource and writes the result back with a
// new version, together with fn's membership change, in one transaction. A user
// update that queues no message is instead read without a lock and written on
// condition that its version has not moved (see updateOne).
func (s *Store) Update(ctx context.Context, tenantID string, kind store.Kind, id string, fn store.Updater) (*store.Resource, error) {
	// Groups take the transaction: most group updates change members, which
	// updateOne would find out only after a read the transaction repeats.
	if kind == store.KindUser {
		if out, done, err := s.updateOne(ctx, tenantID, id, fn); done {
			return out, err
		}
	}
	var out *store.Resource
	err := s.tx(ctx, func(tx *gorm.DB) error {
		cur, err := s.getRow(tx, tenantID, kind, id, s.d.ForUpdate(), kind == store.KindUser)
		if err != nil {
			return err
		}
		prev := cur.Version
		mc, err := fn(cur)
		unchanged := errors.Is(err, store.ErrUnchanged)
		if err != nil && !unchanged {
			return err
		}
		cur.TenantID, cur.Kind, cur.ID = tenantID, kind, id
		if unchanged && len(cur.Outbox) == 0 {
			// The resource is as read: only its memberships may change, and if
			// none does, nothing is written.
			changed, err := s.changeAllMembers(tx, tenantID, kind, id, mc)
			if err != nil {
				return err
			}
			if !changed {
				out = cur
				return nil
			}
			mc = nil
		}
		if err := s.writeOver(tx, cur, prev); err != nil {
			return err
		}
		if _, err := s.changeAllMembers(tx, tenantID, kind, id, mc); err != nil {
			return err
		}
		if err := s.queue(tx, cur); err != nil {
			return err
		}
		if err := s.change(ctx, tx, tenantID, store.OpUpdate, string(kind), id, version(prev), version(cur.Version)); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// writeOver writes cur, read at version prev, back as version prev+1 with a new
// modification time, on condition that the row still has version prev. Update
// reads under a row lock, so the version cannot move in between; the condition
// still guards the write should the lock not hold (a database whose locking is
// weaker than it says): a write over a version another writer moved is
// ErrPrecondition, never a silent overwrite of that writer's change or an answer
// for a change that was not stored.
func (s *Store) writeOver(tx *gorm.DB, cur *store.Resource, prev int64) error {
	cur.Version = prev + 1
	cur.LastModified = now()
	var res *gorm.DB
	if cur.Kind == store.KindGroup {
		res = tx.Exec(`UPDATE "groups" SET external_id = ?, display_name = ?, display_name_lower = ?, data = ?, version = ?, last_modified = ?
			WHERE tenant_id = ? AND id = ? AND version = ?`,
			cur.ExternalID, cur.DisplayName, lowerPtr(cur.DisplayName), string(cur.Doc), cur.Version, cur.LastModified, cur.TenantID, cur.ID, prev)
	} else {
		res = tx.Exec(`UPDATE users SET external_id = ?, user_name = ?, user_name_lower = ?, display_name = ?, display_name_lower = ?, active = ?,
			data = ?, password_hash = ?, version = ?, last_modified = ? WHERE tenant_id = ? AND id = ? AND version = ?`,
			cur.ExternalID, cur.UserName, strings.ToLower(cur.UserName), cur.DisplayName, lowerPtr(cur.DisplayName), cur.Active,
			string(cur.Doc), cur.PasswordHash, cur.Version, cur.LastModified, cur.TenantID, cur.ID, prev)
	}
	if res.Error != nil {
		return s.writeErr(res.Error)
	}
	if res.RowsAffected != 1 {
		return store.ErrPrecondition
	}
	return nil
}

// changeAllMembers applies a group's membership changes in order and reports
// whether any membership was added or dropped.
func (s *Store) changeAllMembers(tx *gorm.DB, tenantID string, kind store.Kind, groupID string, mc []store.MemberChange) (bool, error) {
	changed := false
	for i := range mc {
		if kind != store.KindGroup || mc[i].Empty() {
			continue
		}
		n, err := s.changeMembers(tx, tenantID, groupID, &mc[i])
		if err != nil {
			return false, err
		}
		changed = changed || n > 0
	}
	return changed, nil
}

// changeMembers applies one step of membership changes and returns how many rows
// it deleted and inserted. A Replace whose new members are exactly the current
// ones touches no row, whatever the step also removes.
func (s *Store) changeMembers(tx *gorm.DB, tenantID, groupID string, mc *store.MemberChange) (int64, error) {
	var n int64
	if mc.Replace {
		// Remove and RemoveWhere run after Replace has dropped every membership, so
		// the step leaves exactly Add: when that is the current membership, the step
		// changes nothing (store.Updater: no new version).
		same, err := s.sameMembers(tx, tenantID, groupID, mc.Add)
		if err != nil || same {
			return 0, err
		}
		res := tx.Exec(`DELETE FROM group_members WHERE tenant_id = ? AND group_id = ?`, tenantID, groupID)
		if res.Error != nil {
			return 0, s.writeErr(res.Error)
		}
		n += res.RowsAffected
	}
	for lo := 0; lo < len(mc.Remove); lo += chunk {
		part := mc.Remove[lo:min(lo+chunk, len(mc.Remove))]
		res := tx.Exec(`DELETE FROM group_members WHERE tenant_id = ? AND group_id = ? AND member_id IN ?`, tenantID, groupID, part)
		if res.Error != nil {
			return 0, s.writeErr(res.Error)
		}
		n += res.RowsAffected
	}
	if mc.RemoveWhere != nil {
		cond, args, err := compileMemberFilter(s.d, mc.RemoveWhere)
		if err != nil {
			return 0, err
		}
		args = append([]any{tenantID, groupID}, args...)
		res := tx.Exec(`DELETE FROM group_members WHERE tenant_id = ? AND group_id = ? AND (`+cond+`)`, args...)
		if res.Error != nil {
			return 0, s.writeErr(res.Error)
		}
		n += res.RowsAffected
	}
	if len(mc.Add) > 0 {
		_, added, err := s.addMembers(tx, tenantID, groupID, mc.Add)
		if err != nil {
			return 0, err
		}
		n += added
	}
	return n, nil
}

// sameMembers reports whether the group's members are exactly members.
func (s *Store) sameMembers(tx *gorm.DB, tenantID, groupID string, members []store.Member) (bool, error) {
	ids := make([]string, 0, len(members))
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if !seen[m.Value] {
			seen[m.Value] = true
			ids = append(ids, m.Value)
		}
	}
	var total int64
	if err := tx.Raw(`SELECT count(*) FROM group_members WHERE tenant_id = ? AND group_id = ?`, tenantID, groupID).Scan(&total).Error; err != nil {
		return false, s.readErr(err)
	}
	if total != int64(len(ids)) {
		return false, nil
	}
	var present int64
	for lo := 0; lo < len(ids); lo += chunk {
		var n int64
		part := ids[lo:min(lo+chunk, len(ids))]
		if err := tx.Raw(`SELECT count(*) FROM group_members WHERE tenant_id = ? AND group_id = ? AND member_id IN ?`, tenantID, groupID, part).Scan(&n).Error; err != nil {
			return false, s.readErr(err)
		}
		present += n
	}
	return present == total, nil
}

// addMembers resolves each member's type from its own row (a member must be a user or
// group of the same tenant) and inserts the memberships that do not exist yet.
func (s *Store) addMembers(tx *gorm.DB, tenantID, groupID string, members []store.Member) ([]store.Member, int64, error) {
	seen := make(map[string]bool, len(members))
	ids := make([]string, 0, len(members))
	for _, m := range members {
		if !seen[m.Value] {
			seen[m.Value] = true
			ids = append(ids, m.Value)
		}
	}
	if seen[groupID] {
		return nil, 0, &store.MemberError{Missing: []string{groupID}, Self: true}
	}
	types := make(map[string]store.Kind, len(ids))
	for lo := 0; lo < len(ids); lo += chunk {
		part := ids[lo:min(lo+chunk, len(ids))]
		// Each member row stays locked against deletion until the transaction ends:
		// a concurrent Delete either waits and then drops the new memberships, or
		// commits first and the member is missing here.
		for _, kind := range []store.Kind{store.KindUser, store.KindGroup} {
			var found []string
			err := tx.Raw(`SELECT id FROM `+table(kind)+` WHERE tenant_id = ? AND id IN ?`+s.d.ForKeyShare(), tenantID, part).Scan(&found).Error
			if err != nil {
				return nil, 0, s.readErr(err)
			}
			for _, id := range found {
				types[id] = kind
			}
		}
	}
	var missing []string
	out := make([]store.Member, 0, len(ids))
	for _, id := range ids {
		k, ok := types[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out = append(out, store.Member{Value: id, Type: k})
	}
	if len(missing) > 0 {
		return nil, 0, &store.MemberError{Missing: missing}
	}
	const perInsert = 200
	var inserted int64
	for lo := 0; lo < len(out); lo += perInsert {
		part := out[lo:min(lo+perInsert, len(out))]
		var sb strings.Builder
		args := make([]any, 0, len(part)*4)
		sb.WriteString(`INSERT INTO group_members (tenant_id, group_id, member_id, member_type) VALUES `)
		for i, m := range part {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(?, ?, ?, ?)")
			args = append(args, tenantID, groupID, m.Value, string(m.Type))
		}
		sb.WriteString(` ON CONFLICT DO NOTHING`)
		res := tx.Exec(sb.String(), args...)
		if res.Error != nil {
			return nil, 0, s.writeErr(res.Error)
		}
		inserted += res.RowsAffected
	}
	return out, inserted, nil
}

// Delete removes a resource and every membership naming it; the groups that lose a
// member get a new version.
func (s *Store) Delete(ctx context.Context, tenantID string, kind store.Kind, id string, ifVersion int64) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		// Lock the groups holding the resource before the resource itself: an Update
		// of one of them locks the group, then its members (addMembers), so taking
		// the same order makes one wait for the other instead of both deadlocking.
		// Without row locks (SQLite) the transaction already holds the database.
		// Their versions go into the audit events of the membership they lose.
		var held []heldGroup
		if err := tx.Raw(`SELECT id, version FROM "groups" WHERE tenant_id = ? AND id IN
			(SELECT group_id FROM group_members WHERE tenant_id = ? AND member_id = ?) ORDER BY id`+s.d.ForUpdate(),
			tenantID, tenantID, id).Scan(&held).Error; err != nil {
			return s.readErr(err)
		}
		cur, err := s.getRow(tx, tenantID, kind, id, s.d.ForUpdate(), false)
		if err != nil {
			return err
		}
		if ifVersion != 0 && cur.Version != ifVersion {
			return store.ErrPrecondition
		}
		if err := tx.Exec(`UPDATE "groups" SET version = version + 1, last_modified = ?
			WHERE tenant_id = ? AND id IN (SELECT group_id FROM group_members WHERE tenant_id = ? AND member_id = ?)`,
			now(), tenantID, tenantID, id).Error; err != nil {
			return s.writeErr(err)
		}
		if err := tx.Exec(`DELETE FROM group_members WHERE tenant_id = ? AND member_id = ?`, tenantID, id).Error; err != nil {
			return s.writeErr(err)
		}
		if kind == store.KindGroup {
			if err := tx.Exec(`DELETE FROM group_members WHERE tenant_id = ? AND group_id = ?`, tenantID, id).Error; err != nil {
				return s.writeErr(err)
			}
		}
		if err := tx.Exec(`DELETE FROM `+table(kind)+` WHERE tenant_id = ? AND id = ?`, tenantID, id).Error; err != nil {
			return s.writeErr(err)
		}
		if err := s.countChange(tx, tenantID, kind, -1); err != nil {
			return err
		}
		return s.audit(tx, deleteEvents(store.ActorFrom(ctx), tenantID, kind, id, cur.Version, held)...)
	})
}

// countShards is how many rows hold one tenant's count of one kind: concurrent
// creates pick one at random, so they seldom wait on the same row.
const countShards = 16

// countChange adds delta to the tenant's count of kind, inside the transaction that
// creates or deletes the resource (migration 10).
func (s *Store) countChange(tx *gorm.DB, tenantID string, kind store.Kind, delta int) error {
	err := tx.Exec(`INSERT INTO resource_counts (tenant_id, kind, shard, n) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, kind, shard) DO UPDATE SET n = resource_counts.n + excluded.n`,
		tenantID, string(kind), rand.IntN(countShards), delta).Error
	return s.writeErr(err)
}

// total is how many resources of kind the tenant has, from resource_counts.
func (s *Store) total(db *gorm.DB, tenantID string, kind store.Kind) (int, error) {
	var n int64
	err := db.Raw(`SELECT COALESCE(SUM(n), 0) FROM resource_counts WHERE tenant_id = ? AND kind = ?`, tenantID, string(kind)).Scan(&n).Error
	return int(n), s.readErr(err)
}

// maxAttempts bounds how often a transaction runs when the database reports a
// transient conflict such as a deadlock.
const maxAttempts = 3

// tx runs fn in a transaction, again (up to maxAttempts) when the database aborts it
// for a transient conflict. fn must therefore be safe to run more than once.
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.writeTurn != nil {
		select {
		case s.writeTurn <- struct{}{}:
			defer func() { <-s.writeTurn }()
		case <-ctx.Done():
			return s.stmtErr(ctx, ctx.Err())
		}
	}
	return s.stmtErr(ctx, s.again(ctx, func() error { return s.db.WithContext(ctx).Transaction(fn) }))
}

// again runs write, a transaction or a single statement, up to maxAttempts times
// while the database aborts it for a transient conflict (or it did not run at all,
// see sharedPrepareFailed). write must therefore be safe to run more than once.
func (s *Store) again(ctx context.Context, write func() error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = write()
		if sharedPrepareFailed(ctx, err) {
			continue
		}
		if err == nil || !s.d.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		s.log.Debug("write conflict, retrying", zap.Int("attempt", attempt), zap.Error(err))
	}
	return err
}

func (s *Store) writeErr(err error) error {
	if err == nil {
		return nil
	}
	if s.d.IsUniqueViolation(err) {
		return fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	return s.readErr(err)
}

func (s *Store) readErr(err error) error {
	if err == nil {
		return nil
	}
	if s.unavailable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return tooComplex(err)
}

// unavailable reports whether err means the database cannot serve at the moment
// (store.ErrUnavailable, a 503 with Retry-After) rather than that it refused the
// query.
func (s *Store) unavailable(err error) bool { return isConnErr(err) || s.d.IsUnavailable(err) }

// isConnErr reports whether err means the database could not be reached, as
// opposed to a query it refused. A connection the server closed under a query (a
// restart or failover) reads as an end of file.
func isConnErr(err error) bool {
	var op *net.OpError
	return errors.Is(err, sql.ErrConnDone) || errors.Is(err, driver.ErrBadConn) || errors.As(err, &op) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "sql: database is closed")
}
