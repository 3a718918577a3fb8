package gormstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// migrations are applied in order, each once. Never edit
// one that has shipped: add another. {{json}}, {{time}} and {{bool}} are the dialect's
// column types.
var migrations = []string{
	// 1: tenants, tokens, users, groups, memberships.
	`CREATE TABLE tenants (
		id VARCHAR(36) PRIMARY KEY,
		name VARCHAR(255) NOT NULL,
		created {{time}} NOT NULL
	);
	CREATE UNIQUE INDEX tenants_name ON tenants (name);
	CREATE TABLE api_tokens (
		id VARCHAR(36) PRIMARY KEY,
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		hash VARCHAR(64) NOT NULL,
		scopes VARCHAR(255) NOT NULL,
		created {{time}} NOT NULL,
		revoked_at {{time}} NULL
	);
	CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (hash);
	CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id);
	CREATE TABLE users (
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		id VARCHAR(36) NOT NULL,
		external_id TEXT NULL,
		user_name TEXT NOT NULL,
		user_name_lower TEXT NOT NULL,
		display_name TEXT NULL,
		display_name_lower TEXT NULL,
		active {{bool}} NULL,
		data {{json}} NOT NULL,
		password_hash TEXT NOT NULL DEFAULT '',
		version BIGINT NOT NULL,
		created {{time}} NOT NULL,
		last_modified {{time}} NOT NULL,
		PRIMARY KEY (tenant_id, id)
	);
	CREATE UNIQUE INDEX users_user_name ON users (tenant_id, user_name_lower);
	CREATE INDEX users_external_id ON users (tenant_id, external_id);
	CREATE INDEX users_display_name ON users (tenant_id, display_name_lower);
	CREATE INDEX users_created ON users (tenant_id, created, id);
	CREATE TABLE "groups" (
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		id VARCHAR(36) NOT NULL,
		external_id TEXT NULL,
		display_name TEXT NULL,
		display_name_lower TEXT NULL,
		data {{json}} NOT NULL,
		version BIGINT NOT NULL,
		created {{time}} NOT NULL,
		last_modified {{time}} NOT NULL,
		PRIMARY KEY (tenant_id, id)
	);
	CREATE INDEX groups_external_id ON "groups" (tenant_id, external_id);
	CREATE INDEX groups_display_name ON "groups" (tenant_id, display_name_lower);
	CREATE INDEX groups_created ON "groups" (tenant_id, created, id);
	CREATE TABLE group_members (
		tenant_id VARCHAR(36) NOT NULL,
		group_id VARCHAR(36) NOT NULL,
		member_id VARCHAR(36) NOT NULL,
		member_type VARCHAR(5) NOT NULL,
		PRIMARY KEY (tenant_id, group_id, member_id)
	);
	CREATE INDEX group_members_member ON group_members (tenant_id, member_id);`,
	// 2: the user a token acts as at /Me (RFC 7644 §3.11). No foreign key: a token
	// whose user was deleted stays bound to it, so /Me can say the user is gone.
	`ALTER TABLE api_tokens ADD COLUMN user_id VARCHAR(36) NULL`,
	// 3: server-wide secrets every replica shares (the key that signs list cursors).
	`CREATE TABLE server_secrets (
		name VARCHAR(64) PRIMARY KEY,
		value VARCHAR(128) NOT NULL,
		created {{time}} NOT NULL
	)`,
	// 4: the client profile of a token, and how often each token's requests needed a
	// non-standard form rewritten.
	`ALTER TABLE api_tokens ADD COLUMN profile VARCHAR(16) NOT NULL DEFAULT '';
	CREATE TABLE quirk_counts (
		tenant_id VARCHAR(36) NOT NULL,
		token_id VARCHAR(36) NOT NULL,
		quirk VARCHAR(64) NOT NULL,
		count BIGINT NOT NULL,
		last_seen {{time}} NOT NULL,
		PRIMARY KEY (tenant_id, token_id, quirk)
	)`,
	// 5: tenant settings the compatibility routes consult, sandbox tokens, and the
	// outbox of messages written in the same transaction as their user.
	`ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE api_tokens ADD COLUMN sandbox {{bool}} NOT NULL DEFAULT FALSE;
	CREATE TABLE outbox (
		id VARCHAR(36) PRIMARY KEY,
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		user_id VARCHAR(36) NOT NULL,
		kind VARCHAR(32) NOT NULL,
		recipient TEXT NOT NULL,
		payload TEXT NOT NULL,
		status VARCHAR(16) NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		created {{time}} NOT NULL,
		next_attempt {{time}} NOT NULL,
		sent_at {{time}} NULL
	);
	CREATE INDEX outbox_due ON outbox (status, next_attempt);
	CREATE INDEX outbox_tenant ON outbox (tenant_id, created)`,
	// 6: background tasks (bulk user imports) and their entries. An entry is claimed
	// by setting claim and moving due to the end of the lease; a worker takes the
	// pending entries that are due.
	`CREATE TABLE tasks (
		id VARCHAR(36) PRIMARY KEY,
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		type VARCHAR(32) NOT NULL,
		total INTEGER NOT NULL,
		created {{time}} NOT NULL,
		last_checked_in {{time}} NULL,
		completed {{time}} NULL
	);
	CREATE INDEX tasks_tenant ON tasks (tenant_id, created);
	CREATE TABLE task_entries (
		task_id VARCHAR(36) NOT NULL REFERENCES tasks (id),
		seq INTEGER NOT NULL,
		tenant_id VARCHAR(36) NOT NULL,
		entry_key TEXT NOT NULL,
		given_name TEXT NOT NULL DEFAULT '',
		family_name TEXT NOT NULL DEFAULT '',
		resource_id VARCHAR(36) NOT NULL,
		op VARCHAR(16) NOT NULL,
		payload TEXT NOT NULL,
		status VARCHAR(16) NOT NULL,
		claim VARCHAR(36) NOT NULL DEFAULT '',
		due {{time}} NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		error_code VARCHAR(32) NOT NULL DEFAULT '',
		error_msg TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (task_id, seq)
	);
	CREATE INDEX task_entries_due ON task_entries (status, due)`,
	// 7: outbox delivery. A message is claimed like a task entry (claim set,
	// next_attempt moved to the end of the lease); last_error says why the last
	// attempt failed and message_id is the Message-ID it was sent with. account_links
	// holds the single-use links a message carries, by the SHA-256 of their secret.
	`ALTER TABLE outbox ADD COLUMN claim VARCHAR(36) NOT NULL DEFAULT '';
	ALTER TABLE outbox ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
	ALTER TABLE outbox ADD COLUMN message_id VARCHAR(128) NOT NULL DEFAULT '';
	CREATE TABLE account_links (
		hash VARCHAR(64) PRIMARY KEY,
		tenant_id VARCHAR(36) NOT NULL REFERENCES tenants (id),
		user_id VARCHAR(36) NOT NULL,
		message VARCHAR(36) NOT NULL,
		kind VARCHAR(32) NOT NULL,
		created {{time}} NOT NULL,
		expires {{time}} NOT NULL,
		used_at {{time}} NULL
	);
	CREATE INDEX account_links_message ON account_links (message)`,
	// 8: the append-only audit log. One row per change (or refused change) of a
	// tenant's data, written in the same transaction as the change it records;
	// old_version and new_version are the resource's versions before and after
	// (NULL where there is none). Rows are only ever inserted, and deleted by the
	// retention sweep once older than the configured period.
	`CREATE TABLE audit_events (
		id VARCHAR(36) PRIMARY KEY,
		tenant_id VARCHAR(36) NOT NULL,
		at {{time}} NOT NULL,
		token_id VARCHAR(36) NOT NULL DEFAULT '',
		client_addr VARCHAR(64) NOT NULL DEFAULT '',
		request_id VARCHAR(64) NOT NULL DEFAULT '',
		route VARCHAR(64) NOT NULL DEFAULT '',
		operation VARCHAR(32) NOT NULL,
		resource_type VARCHAR(32) NOT NULL DEFAULT '',
		resource_id VARCHAR(36) NOT NULL DEFAULT '',
		old_version BIGINT NULL,
		new_version BIGINT NULL,
		outcome VARCHAR(16) NOT NULL,
		status INTEGER NOT NULL DEFAULT 0,
		detail TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at, id);
	CREATE INDEX audit_events_at ON audit_events (at)`,
	// 9: token expiry and a coarse last-used time (written at most once per
	// interval per token, not on every request).
	`ALTER TABLE api_tokens ADD COLUMN expires_at {{time}} NULL;
	ALTER TABLE api_tokens ADD COLUMN last_used_at {{time}} NULL`,
	// 10: how many users and groups each tenant has, kept in the same transaction
	// as every create and delete, so an unfiltered list knows its totalResults
	// without counting a million rows on every page. Each tenant's count is spread
	// over a few rows (shards) so that concurrent creates rarely wait for each
	// other; the total is their sum.
	`CREATE TABLE resource_counts (
		tenant_id VARCHAR(36) NOT NULL,
		kind VARCHAR(8) NOT NULL,
		shard INTEGER NOT NULL,
		n BIGINT NOT NULL,
		PRIMARY KEY (tenant_id, kind, shard)
	);
	INSERT INTO resource_counts (tenant_id, kind, shard, n) SELECT tenant_id, 'User', 0, count(*) FROM users GROUP BY tenant_id;
	INSERT INTO resource_counts (tenant_id, kind, shard, n) SELECT tenant_id, 'Group', 0, count(*) FROM "groups" GROUP BY tenant_id`,
	// 11: a number that moves whenever a token or a tenant changes in a way a cached
	// principal would show (see TokenEpoch); the triggers are in dialectMigrations.
	`CREATE TABLE token_epoch (
		id INTEGER PRIMARY KEY,
		n BIGINT NOT NULL
	);
	INSERT INTO token_epoch (id, n) VALUES (1, 0)`,
	// 12: a user's groups are read by (tenant_id, member_id) and need group_id:
	// with the index of migration 1, which lacks it, SQLite preferred the
	// primary key (covering, but searched by tenant_id alone) and read every
	// membership of the tenant for each user — a GET or a DELETE of one user
	// read all 100,000 rows of a big group's memberships. Covering both, this one is
	// the obvious choice on either database.
	`CREATE INDEX group_members_member_group ON group_members (tenant_id, member_id, group_id);
	DROP INDEX group_members_member`,
	// 13: a link is revoked (revoked_at) when a newer link of the same purpose is
	// issued to its user, or another is used; purpose groups the kinds whose links
	// do the same thing (an invitation's link sets a password, as a set_password
	// message's does).
	`ALTER TABLE account_links ADD COLUMN revoked_at {{time}} NULL;
	ALTER TABLE account_links ADD COLUMN purpose VARCHAR(32) NOT NULL DEFAULT '';
	UPDATE account_links SET purpose = CASE kind WHEN 'invitation' THEN 'set_password' ELSE kind END;
	CREATE INDEX account_links_user ON account_links (tenant_id, user_id, purpose)`,
	// 14: the number clients see for a task, 1, 2, 3 … per tenant. Existing tasks
	// are numbered per tenant in creation order (ties by id); task_numbers holds
	// each tenant's last number, incremented in the transaction that creates a
	// task, so concurrent creations (on any replica) wait for each other's row and
	// never share a number; the unique index stands behind it.
	`ALTER TABLE tasks ADD COLUMN number BIGINT NOT NULL DEFAULT 0;
	UPDATE tasks SET number = (SELECT count(*) FROM tasks t2 WHERE t2.tenant_id = tasks.tenant_id
		AND (t2.created < tasks.created OR (t2.created = tasks.created AND t2.id <= tasks.id)));
	CREATE UNIQUE INDEX tasks_tenant_number ON tasks (tenant_id, number);
	CREATE TABLE task_numbers (
		tenant_id VARCHAR(36) PRIMARY KEY,
		n BIGINT NOT NULL
	);
	INSERT INTO task_numbers (tenant_id, n) SELECT tenant_id, max(number) FROM tasks GROUP BY tenant_id`,
}

// tokenEpochColumns are the api_tokens columns a principal is made of: changing
// one moves token_epoch. last_used_at is not one (it is written once a minute per
// token and says nothing about validity). A migration adding a column that
// principals read must recreate the triggers with it.
const tokenEpochColumns = "tenant_id, hash, scopes, revoked_at, user_id, profile, sandbox, expires_at"

// dialectMigrations are statements of a migration that differ per database, run
// verbatim (not split on ";") after the version's shared statements.
var dialectMigrations = map[int]map[string][]string{
	11: {
		"postgres": {
			`CREATE FUNCTION scimd_bump_token_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				UPDATE token_epoch SET n = n + 1 WHERE id = 1;
				RETURN NULL;
			END $$`,
			`CREATE TRIGGER api_tokens_epoch AFTER UPDATE OF ` + tokenEpochColumns + ` OR DELETE ON api_tokens
				FOR EACH STATEMENT EXECUTE FUNCTION scimd_bump_token_epoch()`,
			`CREATE TRIGGER tenants_epoch AFTER UPDATE OF name, settings OR DELETE ON tenants
				FOR EACH STATEMENT EXECUTE FUNCTION scimd_bump_token_epoch()`,
		},
		"sqlite": {
			`CREATE TRIGGER api_tokens_epoch_update AFTER UPDATE OF ` + tokenEpochColumns + ` ON api_tokens
				BEGIN UPDATE token_epoch SET n = n + 1 WHERE id = 1; END`,
			`CREATE TRIGGER api_tokens_epoch_delete AFTER DELETE ON api_tokens
				BEGIN UPDATE token_epoch SET n = n + 1 WHERE id = 1; END`,
			`CREATE TRIGGER tenants_epoch_update AFTER UPDATE OF name, settings ON tenants
				BEGIN UPDATE token_epoch SET n = n + 1 WHERE id = 1; END`,
			`CREATE TRIGGER tenants_epoch_delete AFTER DELETE ON tenants
				BEGIN UPDATE token_epoch SET n = n + 1 WHERE id = 1; END`,
		},
	},
}

// Migrate brings the schema up to date in one transaction. Concurrent callers (several
// replicas starting at once) are serialised by the dialect's lock, and each version is
// applied once.
func (s *Store) Migrate(ctx context.Context) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.d.LockMigrations(tx); err != nil {
			return fmt.Errorf("lock migrations: %w", err)
		}
		if err := tx.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied ` + s.timeType + ` NOT NULL)`).Error; err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var applied int64
		if err := tx.Raw(`SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&applied).Error; err != nil {
			return err
		}
		if int(applied) > len(migrations) {
			return fmt.Errorf("the database is at schema version %d, newer than this scimd (%d): upgrade scimd", applied, len(migrations))
		}
		for i := int(applied); i < len(migrations); i++ {
			for _, stmt := range strings.Split(s.expand(migrations[i]), ";") {
				if strings.TrimSpace(stmt) == "" {
					continue
				}
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			for _, stmt := range dialectMigrations[i+1][s.d.Name()] {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %d: %w", i+1, err)
				}
			}
			if err := tx.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, i+1, now()).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) expand(m string) string {
	json, ts, b := s.d.Types()
	return strings.NewReplacer("{{json}}", json, "{{time}}", ts, "{{bool}}", b).Replace(m)
}

// now is the store's clock: UTC, truncated to the microsecond both databases keep.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
