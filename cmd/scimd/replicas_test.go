package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/scimd/scimd/scim"
	"github.com/scimd/scimd/store/storetest"
)

// TestReplicas builds the scimd binary, sets up a fresh PostgreSQL schema with the
// CLI as an operator would (migrate, tenant create, token create), and runs three
// `scimd serve` processes on it behind a TCP proxy the test controls. Requests are
// spread over the three processes; the subtests check what the README promises of
// replicas: a userName is created once, concurrent membership changes all survive,
// If-Match lets exactly one writer win, a database outage and sessions ended by the
// server are answered 503 (never 500) and recovered from without losing an
// acknowledged write, and SIGTERM drains without cutting a request or leaving half
// a write.
func TestReplicas(t *testing.T) {
	base := os.Getenv(storetest.PostgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is not set: the replica tests must run in CI", storetest.PostgresEnv)
		}
		t.Skipf("replica tests skipped: they need PostgreSQL; set %s (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)", storetest.PostgresEnv)
	}
	bin := buildScimd(t)
	db := newReplicaDatabase(t, base)
	proxy := startDBProxy(t, db.host)

	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--database", db.dsn, "--log-level", "warn")...)
		cmd.Env = replicaEnv()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("scimd %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	cli("migrate")
	first := cli("tenant", "create", "acme", "--scope", "scim")
	second := cli("token", "create", "--tenant", "acme", "--scope", "scim")
	tokens := []string{first, second}
	var tenantID string
	if err := db.sql.Raw(`SELECT id FROM tenants WHERE name = 'acme'`).Scan(&tenantID).Error; err != nil || tenantID == "" {
		t.Fatalf("tenant acme: %q %v", tenantID, err)
	}

	// Three replicas start at once; each migrates (a no-op under the lock) first.
	// The replicas reach the database through the proxy and name themselves, so
	// the test can cut their connections or end their sessions.
	appName := db.schema
	viaProxy := db.dsnVia(proxy.addr) + "&application_name=" + appName
	var replicas []*scimdProc
	for range 3 {
		replicas = append(replicas, startScimd(t, bin, viaProxy))
	}
	for _, p := range replicas {
		p.waitReady(t)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	t.Cleanup(client.CloseIdleConnections)
	// on spreads request i over the replicas and the two tokens.
	on := func(i int) (string, string) { return replicas[i%3].url, tokens[i%2] }

	t.Run("unique_userName", func(t *testing.T) {
		const n = 30
		cases := []string{"race@example.com", "Race@Example.com", "RACE@EXAMPLE.COM"}
		rs, errs := concurrently(n, func(i int) (resp, error) {
			u, tok := on(i)
			return send(client, "POST", u+"/scim/v2/Users", tok, user(cases[i%3], "displayName", fmt.Sprintf("racer %d", i)))
		})
		created := 0
		for i, r := range rs {
			switch {
			case errs[i] != nil:
				t.Errorf("POST %d: %v", i, errs[i])
			case r.status == http.StatusCreated:
				created++
			default:
				if p := scimErrorProblem(r, http.StatusConflict, "uniqueness"); p != "" {
					t.Errorf("POST %d: %s", i, p)
				}
			}
		}
		if created != 1 {
			t.Errorf("%d of %d concurrent creates of one userName answered 201, want exactly 1", created, n)
		}
		var rows int64
		if err := db.sql.Raw(`SELECT count(*) FROM users WHERE tenant_id = ? AND user_name_lower = 'race@example.com'`, tenantID).Scan(&rows).Error; err != nil || rows != 1 {
			t.Errorf("%d rows for the userName, want 1 (%v)", rows, err)
		}
	})

	t.Run("membership", func(t *testing.T) {
		const kept, removed, added = 5, 10, 30
		mk := func(prefix string, n int) []string {
			var out []string
			for i := range n {
				u, tok := on(i)
				r := mustSend(t, client, "POST", u+"/scim/v2/Users", tok, user(fmt.Sprintf("%s-%d@example.com", prefix, i))).want(t, http.StatusCreated)
				out = append(out, str(r.body, "id"))
			}
			return out
		}
		keep, drop, add := mk("kept", kept), mk("dropped", removed), mk("added", added)
		g := mustSend(t, client, "POST", replicas[0].url+"/scim/v2/Groups", tokens[0], group("Replicated", append(append([]string{}, keep...), drop...)...)).want(t, http.StatusCreated)
		gid, v0 := str(g.body, "id"), etagVersion(t, g)
		// Okta and Entra shapes, interleaved: Okta adds with a value list and removes
		// by value filter; Entra capitalises the op and removes with a value list.
		var ops []map[string]any
		for i := range added {
			if i%2 == 0 {
				ops = append(ops, op("add", "members", []any{map[string]any{"value": add[i], "display": fmt.Sprintf("added-%d", i)}}))
			} else {
				ops = append(ops, op("Add", "members", []any{map[string]any{"value": add[i]}}))
			}
			if i%3 == 0 && i/3 < removed {
				j := i / 3
				if j%2 == 0 {
					ops = append(ops, op("remove", `members[value eq "`+drop[j]+`"]`, nil))
				} else {
					ops = append(ops, op("Remove", "members", []any{map[string]any{"value": drop[j]}}))
				}
			}
		}
		rs, errs := concurrently(len(ops), func(i int) (resp, error) {
			u, tok := on(i)
			return send(client, "PATCH", u+"/scim/v2/Groups/"+gid, tok, patchBody(ops[i]))
		})
		for i, r := range rs {
			if errs[i] != nil || r.status != http.StatusOK && r.status != http.StatusNoContent {
				t.Errorf("PATCH %v: %d %v %s", ops[i], r.status, errs[i], r.raw)
			}
		}
		want := sorted(append(append([]string{}, keep...), add...)...)
		got := mustSend(t, client, "GET", replicas[1].url+"/scim/v2/Groups/"+gid, tokens[1], nil).want(t, http.StatusOK)
		if ms := memberIDs(got.body); !same(ms, want) {
			t.Errorf("%d members after %d adds and %d removes over three replicas, want %d", len(ms), added, removed, len(want))
		}
		if v := etagVersion(t, got); v != v0+int64(len(ops)) {
			t.Errorf("group version %d after %d changes from version %d: an update was lost or doubled", v, len(ops), v0)
		}
		var rows []string
		if err := db.sql.Raw(`SELECT member_id FROM group_members WHERE tenant_id = ? AND group_id = ? ORDER BY member_id`, tenantID, gid).Scan(&rows).Error; err != nil || !same(sorted(rows...), want) {
			t.Errorf("membership rows %d, want %d (%v)", len(rows), len(want), err)
		}
	})

	t.Run("if_match", func(t *testing.T) {
		const writers = 12
		const name = "ifmatch@example.com"
		c := mustSend(t, client, "POST", replicas[2].url+"/scim/v2/Users", tokens[0], user(name, "displayName", "original")).want(t, http.StatusCreated)
		id, etag, v0 := str(c.body, "id"), c.header.Get("ETag"), etagVersion(t, c)
		rs, errs := concurrently(writers, func(i int) (resp, error) {
			u, tok := on(i)
			value := fmt.Sprintf("writer %d", i)
			if i%2 == 0 {
				return send(client, "PUT", u+"/scim/v2/Users/"+id, tok, user(name, "displayName", value), "If-Match", etag)
			}
			return send(client, "PATCH", u+"/scim/v2/Users/"+id, tok, patchBody(op("replace", "displayName", value)), "If-Match", etag)
		})
		winner := -1
		for i, r := range rs {
			switch {
			case errs[i] != nil:
				t.Errorf("writer %d: %v", i, errs[i])
			case r.status == http.StatusOK:
				if winner >= 0 {
					t.Errorf("writers %d and %d both succeeded with If-Match %s", winner, i, etag)
				}
				winner = i
			default:
				if p := scimErrorProblem(r, http.StatusPreconditionFailed, ""); p != "" {
					t.Errorf("writer %d: %s", i, p)
				}
			}
		}
		if winner < 0 {
			t.Fatalf("no writer succeeded")
		}
		got := mustSend(t, client, "GET", replicas[0].url+"/scim/v2/Users/"+id, tokens[1], nil).want(t, http.StatusOK)
		if dn := str(got.body, "displayName"); dn != fmt.Sprintf("writer %d", winner) {
			t.Errorf("stored displayName %q, want the winner's %q", dn, fmt.Sprintf("writer %d", winner))
		}
		if v := etagVersion(t, got); v != v0+1 || got.header.Get("ETag") != rs[winner].header.Get("ETag") {
			t.Errorf("version %d (ETag %s), want %d, the winner's ETag %s", v, got.header.Get("ETag"), v0+1, rs[winner].header.Get("ETag"))
		}
		var version int64
		if err := db.sql.Raw(`SELECT version FROM users WHERE tenant_id = ? AND id = ?`, tenantID, id).Scan(&version).Error; err != nil || version != v0+1 {
			t.Errorf("stored version %d, want %d (%v)", version, v0+1, err)
		}
	})

	t.Run("revocation", func(t *testing.T) {
		// Every replica has accepted (and cached) the token; the CLI, another
		// process, revokes it: each replica refuses it within three refreshes of
		// its token cache.
		secret := cli("token", "create", "--tenant", "acme", "--scope", "scim")
		for _, p := range replicas {
			mustSend(t, client, "GET", p.url+"/scim/v2/Users?count=0", secret, nil).want(t, http.StatusOK)
			mustSend(t, client, "GET", p.url+"/scim/v2/Users?count=0", secret, nil).want(t, http.StatusOK)
		}
		h := sha256.Sum256([]byte(secret))
		var id string
		if err := db.sql.Raw(`SELECT id FROM api_tokens WHERE hash = ?`, hex.EncodeToString(h[:])).Scan(&id).Error; err != nil || id == "" {
			t.Fatalf("token id: %q %v", id, err)
		}
		cli("token", "revoke", "--tenant", "acme", id)
		revoked := time.Now()
		for i, p := range replicas {
			for {
				r := mustSend(t, client, "GET", p.url+"/scim/v2/Users?count=0", secret, nil)
				if r.status == http.StatusUnauthorized {
					t.Logf("replica %d refuses the revoked token %s after the CLI returned (designed bound %s)",
						i, time.Since(revoked).Round(time.Millisecond), 3*scim.DefaultTokenCacheRefresh)
					break
				}
				r.want(t, http.StatusOK)
				if time.Since(revoked) > 2*time.Second {
					t.Fatalf("replica %d still accepts the token %s after its revocation", i, time.Since(revoked))
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		// The other tokens are untouched.
		for i := range 6 {
			u, tok := on(i)
			mustSend(t, client, "GET", u+"/scim/v2/Users?count=0", tok, nil).want(t, http.StatusOK)
		}
	})

	t.Run("database_outage", func(t *testing.T) {
		testDatabaseOutage(t, replicas, proxy, tokens)
	})

	t.Run("terminated_connections", func(t *testing.T) {
		testTerminatedConnections(t, replicas, tokens, db, appName)
	})

	t.Run("stalled_database", func(t *testing.T) {
		testStalledDatabase(t, bin, db, tokens[0])
	})
	t.Run("sigterm", func(t *testing.T) {
		testSIGTERM(t, bin, db.dsn, replicas[0], tokens[0])
	})

	if t.Failed() {
		for i, p := range replicas {
			t.Logf("replica %d log (tail):\n%s", i, p.logTail())
		}
	}
}

// testDatabaseOutage cuts the database under a bounded load of creates and PATCHes
// over every replica, then restores it. While it is down every request must answer
// fast with 503 and a SCIM error (never 500, never hang) and /readyz must say not
// ready; once it is back each replica must serve writes again without a restart;
// and every write the load saw acknowledged must be there afterwards.
func testDatabaseOutage(t *testing.T, replicas []*scimdProc, proxy *dbProxy, tokens []string) {
	const outage = 2500 * time.Millisecond
	l := startWriteLoad(replicas, tokens, "outage-")
	defer l.stop()
	pollUntil(t, 10*time.Second, "the load to get 20 writes acknowledged", func() bool { return l.acks() >= 20 })
	proxy.cut()
	cutAt := time.Now()
	for i, p := range replicas {
		pollUntil(t, 5*time.Second, fmt.Sprintf("replica %d /readyz to answer 503 while the database is down", i), func() bool { return p.readyStatus() == http.StatusServiceUnavailable })
	}
	pollUntil(t, 5*time.Second, "a 503 during the outage", func() bool { return l.count503() > 0 })
	time.Sleep(time.Until(cutAt.Add(outage))) // the outage lasts this long
	unavailable := l.count503()
	proxy.restore()
	restoredAt := time.Now()
	l.markRestored(restoredAt)
	for i, p := range replicas {
		pollUntil(t, 10*time.Second, fmt.Sprintf("replica %d to serve a write after the database came back", i), func() bool { return l.okSince(i, restoredAt) })
		pollUntil(t, 5*time.Second, fmt.Sprintf("replica %d /readyz to answer 200 again", i), func() bool { return p.readyStatus() == http.StatusOK })
	}
	recovery := time.Since(restoredAt)
	time.Sleep(300 * time.Millisecond) // a little steady load after recovery
	l.stop()
	t.Logf("outage of %v: %s, %d of the 503s during the cut; every replica writing again %v after the restore",
		outage, l.summary(), unavailable, recovery.Round(10*time.Millisecond))
	if recovery > 5*time.Second {
		t.Errorf("replicas took %v to write again after the database came back, want a few seconds", recovery)
	}
	l.check(t, replicas[1].url, tokens[0])
}

// testTerminatedConnections ends every database session of the replicas from the
// server side (what a PostgreSQL restart or failover does to a connection pool)
// three times under load: the requests on those sessions answer 503, never 500,
// the replicas reconnect by themselves, and no acknowledged write is lost.
func testTerminatedConnections(t *testing.T, replicas []*scimdProc, tokens []string, db *replicaDatabase, appName string) {
	l := startWriteLoad(replicas, tokens, "term-")
	defer l.stop()
	pollUntil(t, 10*time.Second, "the load to get 20 writes acknowledged", func() bool { return l.acks() >= 20 })
	killed := 0
	for range 3 {
		var n int
		if err := db.sql.Raw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = ?`, appName).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		killed += n
		at, before := time.Now(), l.acks()
		l.markRestored(at)
		pollUntil(t, 10*time.Second, "writes to succeed again after the sessions were ended", func() bool { return l.acks() >= before+10 })
		for i := range replicas {
			pollUntil(t, 10*time.Second, fmt.Sprintf("replica %d to serve a write after its sessions were ended", i), func() bool { return l.okSince(i, at) })
		}
	}
	l.stop()
	t.Logf("%d sessions ended in three rounds: %s", killed, l.summary())
	if killed == 0 {
		t.Errorf("no session of the replicas (application_name %s) was found to end", appName)
	}
	l.check(t, replicas[2].url, tokens[1])
}

// writeLoad is a bounded load of creates, each followed by one PATCH of the user
// it created, spread over the replicas by four workers, and what it saw.
type writeLoad struct {
	prefix string
	cancel context.CancelFunc
	wg     sync.WaitGroup
	client *http.Client

	mu         sync.Mutex
	created    map[string]string // userName → id, for every 201
	patched    map[string]string // id → displayName, for every 200 to a PATCH
	n503       int
	failures   []string
	slowest    time.Duration
	restoredAt time.Time
	okAfter    map[int]time.Time // replica → first 2xx after restoredAt
	nAcks      int
}

// startWriteLoad starts the load; every user it creates has a userName starting
// with prefix. It stops by itself after 20 s or 5,000 users per worker.
func startWriteLoad(replicas []*scimdProc, tokens []string, prefix string) *writeLoad {
	const (
		workers        = 4
		requestTimeout = 5 * time.Second // an answer slower than this counts as a hang
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	l := &writeLoad{prefix: prefix, cancel: cancel, created: map[string]string{}, patched: map[string]string{}, okAfter: map[int]time.Time{},
		client: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; i < 5000 && ctx.Err() == nil; i++ {
				ri := (w + i) % len(replicas)
				u, tok := replicas[ri].url, tokens[w%2]
				name := fmt.Sprintf("%s%d-%d@example.com", prefix, w, i)
				r, err, took := timedSend(l.client, "POST", u+"/scim/v2/Users", tok, user(name))
				if !l.record(ri, "POST "+name, r, err, took, http.StatusCreated) {
					time.Sleep(20 * time.Millisecond) // a client backs off a little
					continue
				}
				id := str(r.body, "id")
				l.ack(func() { l.created[name] = id })
				// One PATCH per user, on another replica, so an acknowledged value is
				// the last one written.
				ri = (ri + 1) % len(replicas)
				value := "patched " + name
				r, err, took = timedSend(l.client, "PATCH", replicas[ri].url+"/scim/v2/Users/"+id, tok, patchBody(op("replace", "displayName", value)))
				if l.record(ri, "PATCH "+name, r, err, took, http.StatusOK) {
					l.ack(func() { l.patched[id] = value })
				}
			}
		}()
	}
	return l
}

// stop ends the load and waits for its workers; calling it again does nothing.
func (l *writeLoad) stop() {
	l.cancel()
	l.wg.Wait()
	l.client.CloseIdleConnections()
}

// record classifies one answer and reports whether it was the wanted success. A
// 503 must be a SCIM error with Retry-After; anything else that is not the wanted
// status (a 500, a timeout, a dropped connection) is a failure.
func (l *writeLoad) record(replica int, what string, r resp, err error, took time.Duration, want int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest = max(l.slowest, took)
	switch {
	case err != nil:
		l.failures = append(l.failures, fmt.Sprintf("%s on replica %d: no answer after %v: %v", what, replica, took, err))
	case r.status == want:
		if !l.restoredAt.IsZero() && l.okAfter[replica].Before(l.restoredAt) {
			l.okAfter[replica] = time.Now()
		}
		return true
	case r.status == http.StatusServiceUnavailable:
		l.n503++
		if p := scimErrorProblem(r, http.StatusServiceUnavailable, ""); p != "" {
			l.failures = append(l.failures, fmt.Sprintf("%s on replica %d: %s", what, replica, p))
		} else if r.header.Get("Retry-After") == "" {
			l.failures = append(l.failures, fmt.Sprintf("%s on replica %d: 503 without Retry-After", what, replica))
		}
	default:
		l.failures = append(l.failures, fmt.Sprintf("%s on replica %d: status %d, want %d or 503: %s", what, replica, r.status, want, r.raw))
	}
	if len(l.failures) > 20 {
		l.failures = l.failures[:20]
	}
	return false
}

func (l *writeLoad) ack(f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f()
	l.nAcks++
}

func (l *writeLoad) acks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nAcks
}

func (l *writeLoad) count503() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n503
}

// markRestored starts watching for each replica's first success after at.
func (l *writeLoad) markRestored(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restoredAt = at
}

func (l *writeLoad) okSince(replica int, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.okAfter[replica].Before(at)
}

func (l *writeLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d acknowledged creates, %d acknowledged PATCHes, %d answers 503, slowest answer %v",
		len(l.created), len(l.patched), l.n503, l.slowest.Round(time.Millisecond))
}

// check fails t for every failure the load saw and for every acknowledged write
// that is not there, read back through the API of one replica.
func (l *writeLoad) check(t *testing.T, base, token string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.failures {
		t.Error(f)
	}
	if len(l.created) == 0 {
		t.Fatal("the load created nobody")
	}
	stored := listUsers(t, l.client, base, token, `userName sw "`+l.prefix+`"`)
	byID := map[string]storedUser{}
	for _, s := range stored {
		byID[s.id] = s
	}
	for name, id := range l.created {
		if s, ok := stored[name]; !ok || s.id != id {
			t.Errorf("acknowledged create of %s (id %s) is lost: found %+v", name, id, s)
		}
	}
	for id, value := range l.patched {
		if got := byID[id].displayName; got != value {
			t.Errorf("acknowledged PATCH of %s is lost: displayName %q, want %q", id, got, value)
		}
	}
}

// testSIGTERM starts a fourth process with a drain delay, loads it with creates and
// sends it SIGTERM. /readyz must turn 503 while the listener still accepts; every
// answer the load gets is its normal 201; the process exits 0 well within the grace
// period and refuses connections afterwards; and the database holds exactly the
// acknowledged users, plus, for a request whose connection failed, either the whole
// user or nothing.
func testSIGTERM(t *testing.T, bin, dsn string, other *scimdProc, token string) {
	const (
		workers    = 4
		drainDelay = 2 * time.Second
	)
	p := startScimd(t, bin, dsn, "--drain-delay", drainDelay.String())
	p.waitReady(t)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	var (
		mu         sync.Mutex
		acked      = map[string]bool{} // userName → answered 201
		connFailed = map[string]error{}
		refused    int
		failures   []string
		sigAt      time.Time
		afterSig   int
	)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && ctx.Err() == nil; i++ {
				name := fmt.Sprintf("sig-%d-%d@example.com", w, i)
				r, err := send(client, "POST", p.url+"/scim/v2/Users", token, sigtermUser(name))
				mu.Lock()
				switch {
				case errors.Is(err, syscall.ECONNREFUSED):
					// The listener is closed: this request was never accepted.
					refused++
					mu.Unlock()
					return
				case err != nil:
					connFailed[name] = err
				case r.status == http.StatusCreated:
					acked[name] = true
					if !sigAt.IsZero() {
						afterSig++
					}
				default:
					failures = append(failures, fmt.Sprintf("POST %s: status %d during shutdown, want 201: %s", name, r.status, r.raw))
				}
				mu.Unlock()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	pollUntil(t, 10*time.Second, "20 users created before SIGTERM", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	mu.Lock()
	sigAt = time.Now()
	mu.Unlock()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// /readyz must answer 503 on a new connection before the listener closes.
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(drainDelay + 5*time.Second)
	for {
		res, err := probe.Get(p.url + "/readyz")
		if err != nil {
			t.Fatalf("/readyz unreachable %v after SIGTERM before it answered 503: %v", time.Since(sigAt), err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d %v after SIGTERM", res.StatusCode, time.Since(sigAt))
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.done:
	case <-time.After(shutdownGrace + 5*time.Second):
		t.Fatalf("scimd did not exit within %v of SIGTERM", shutdownGrace+5*time.Second)
	}
	exited := time.Since(sigAt)
	if p.err != nil {
		t.Errorf("scimd exited with %v after SIGTERM, want status 0", p.err)
	}
	if exited < drainDelay {
		t.Errorf("scimd exited %v after SIGTERM, before its drain delay of %v", exited, drainDelay)
	}
	if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after scimd exited", p.addr)
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("SIGTERM: exit after %v; %d users created (%d after the signal), %d requests refused by the closed listener, %d connections failed",
		exited.Round(10*time.Millisecond), len(acked), afterSig, refused, len(connFailed))
	for _, f := range failures {
		t.Error(f)
	}
	if afterSig == 0 {
		t.Errorf("no request was served after SIGTERM: the drain delay did not keep the listener open")
	}
	stored := listUsers(t, client, other.url, token, `userName sw "sig-"`)
	for name := range acked {
		if _, ok := stored[name]; !ok {
			t.Errorf("%s was answered 201 but is not stored", name)
		}
	}
	for name, s := range stored {
		if acked[name] {
			continue
		}
		err, failed := connFailed[name]
		if !failed {
			t.Errorf("%s is stored but its create was never acknowledged", name)
			continue
		}
		// A create whose connection failed is all there or not there at all.
		want := sigtermUser(name)
		if s.displayName != want["displayName"] || s.email != name {
			t.Errorf("%s (connection failed: %v) is stored half-written: displayName %q, email %q", name, err, s.displayName, s.email)
		}
	}
	if t.Failed() {
		t.Logf("draining process log (tail):\n%s", p.logTail())
	}
}

func sigtermUser(name string) map[string]any {
	return user(name, "displayName", "Drained "+name, "emails", []any{map[string]any{"value": name, "type": "work", "primary": true}})
}

// storedUser is what listUsers reads of a user.
type storedUser struct{ id, displayName, email string }

// listUsers reads every user matching filter through the API, by cursor pages.
func listUsers(t *testing.T, client *http.Client, base, token, filter string) map[string]storedUser {
	t.Helper()
	out := map[string]storedUser{}
	cursor := ""
	for page := 0; page < 100; page++ {
		q := url.Values{"filter": {filter}, "count": {"1000"}, "cursor": {cursor}, "attributes": {"userName,displayName,emails"}}
		r := mustSend(t, client, "GET", base+"/scim/v2/Users?"+q.Encode(), token, nil).want(t, http.StatusOK)
		list, _ := r.body["Resources"].([]any)
		for _, it := range list {
			m := it.(map[string]any)
			s := storedUser{id: str(m, "id"), displayName: str(m, "displayName")}
			if es, _ := m["emails"].([]any); len(es) > 0 {
				s.email, _ = es[0].(map[string]any)["value"].(string)
			}
			out[str(m, "userName")] = s
		}
		if cursor = str(r.body, "nextCursor"); cursor == "" {
			return out
		}
	}
	t.Fatalf("more than 100 pages of %s", filter)
	return nil
}

// ---- the processes, the database and the proxy

// buildScimd builds this package's binary into a temporary directory.
func buildScimd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "scimd")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = replicaEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// replicaEnv is the environment the processes run with: this one without SCIMD_*
// settings, so only the flags the test passes apply.
func replicaEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SCIMD_") {
			env = append(env, kv)
		}
	}
	return env
}

// replicaDatabase is a fresh schema of the test database.
type replicaDatabase struct {
	schema string
	dsn    string // the schema's URL
	host   string // host:port of the server
	sql    *gorm.DB
}

// newReplicaDatabase creates an empty schema, dropped when t ends, and returns its
// URL; migrating it is left to scimd.
func newReplicaDatabase(t *testing.T, base string) *replicaDatabase {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "scimd_test_" + hex.EncodeToString(b)
	admin, err := gorm.Open(postgres.Open(base), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("connect to %s: %v", storetest.PostgresEnv, err)
	}
	adminDB, _ := admin.DB()
	if err := admin.Exec(`CREATE SCHEMA ` + schema).Error; err != nil {
		t.Fatalf("create schema on %s: %v", storetest.PostgresEnv, err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		adminDB.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", storetest.PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := &replicaDatabase{schema: schema, dsn: u.String(), host: u.Host}
	if db.sql, err = gorm.Open(postgres.Open(db.dsn), &gorm.Config{Logger: logger.Discard}); err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.sql.DB()
	t.Cleanup(func() { sqlDB.Close() })
	return db
}

// dsnVia is the schema's URL through another host:port.
func (d *replicaDatabase) dsnVia(addr string) string {
	u, _ := url.Parse(d.dsn)
	u.Host = addr
	return u.String()
}

// scimdProc is one running `scimd serve`.
type scimdProc struct {
	addr, url string
	cmd       *exec.Cmd
	logs      *lockedBuffer
	done      chan struct{} // closed when the process has exited; err is then set
	err       error
}

// startScimd starts `scimd serve` on a free port of 127.0.0.1; it is killed when t
// ends if it is still running.
func startScimd(t *testing.T, bin, dsn string, args ...string) *scimdProc {
	t.Helper()
	addr := freeAddr(t)
	p := &scimdProc{addr: addr, url: "http://" + addr, logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--database", dsn, "--log-level", "warn"}, args...)...)
	p.cmd.Env = replicaEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// waitReady waits until /readyz answers 200.
func (p *scimdProc) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for p.readyStatus() != http.StatusOK {
		select {
		case <-p.done:
			t.Fatalf("scimd serve exited: %v\n%s", p.err, p.logTail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("scimd serve on %s not ready after 30s\n%s", p.addr, p.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyStatus is the status of GET /readyz, 0 when it does not answer.
func (p *scimdProc) readyStatus() int {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(p.url + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

func (p *scimdProc) logTail() string {
	s := p.logs.String()
	if len(s) > 8000 {
		s = "…" + s[len(s)-8000:]
	}
	return s
}

// lockedBuffer is a bytes.Buffer safe for a process's output and the test at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// dbProxy forwards TCP connections to the database. cut closes every open
// connection and makes the proxy close new ones at once, as a database that went
// away would; restore forwards again.
type dbProxy struct {
	addr   string
	target string
	ln     net.Listener
	mu     sync.Mutex
	down   bool
	stall  bool // hold every byte: the database stops answering, connections stay open
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.forward(c) }()
		}
	}()
	return p
}

func (p *dbProxy) forward(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { p.copy(up, c); done <- struct{}{} }()
	go func() { p.copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// copy forwards src to dst, holding what it read while the proxy is stalled.
func (p *dbProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.stalled() {
			time.Sleep(10 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *dbProxy) stalled() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stall && !p.down
}

func (p *dbProxy) setStall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = on
}

func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// ---- requests

// send makes one request and decodes a SCIM JSON answer; unlike env.call it
// returns transport errors, so it may run on any goroutine.
func send(c *http.Client, method, u, token string, body any, hdr ...string) (resp, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return resp{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	r := resp{status: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/scim+json") {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			return r, fmt.Errorf("%s %s: answer is not a JSON object: %v", method, u, err)
		}
	}
	return r, nil
}

func timedSend(c *http.Client, method, u, token string, body any) (resp, error, time.Duration) {
	start := time.Now()
	r, err := send(c, method, u, token, body)
	return r, err, time.Since(start)
}

// mustSend is send on the test's goroutine, failing t on a transport error.
func mustSend(t *testing.T, c *http.Client, method, u, token string, body any, hdr ...string) resp {
	t.Helper()
	r, err := send(c, method, u, token, body, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// concurrently runs n calls of f at once (released together) and returns their
// answers by index.
func concurrently(n int, f func(i int) (resp, error)) ([]resp, []error) {
	rs, errs := make([]resp, n), make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			rs[i], errs[i] = f(i)
		}()
	}
	close(gate)
	wg.Wait()
	return rs, errs
}

// scimErrorProblem says what is wrong with r as a SCIM error of this status and
// scimType (RFC 7644 §3.12), or "" when nothing is.
func scimErrorProblem(r resp, status int, scimType string) string {
	switch {
	case r.status != status:
		return fmt.Sprintf("status %d, want %d: %s", r.status, status, r.raw)
	case r.header.Get("Content-Type") != "application/scim+json":
		return fmt.Sprintf("%d with Content-Type %q, want a SCIM error", status, r.header.Get("Content-Type"))
	case r.body["status"] != strconv.Itoa(status):
		return fmt.Sprintf("%d with status field %v: %s", status, r.body["status"], r.raw)
	case str(r.body, "scimType") != scimType:
		return fmt.Sprintf("%d with scimType %q, want %q", status, str(r.body, "scimType"), scimType)
	case str(r.body, "detail") == "":
		return fmt.Sprintf("%d without detail: %s", status, r.raw)
	}
	if s, _ := r.body["schemas"].([]any); len(s) != 1 || s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		return fmt.Sprintf("%d with schemas %v", status, r.body["schemas"])
	}
	return ""
}

// etagVersion reads n from an ETag W/"n".
func etagVersion(t *testing.T, r resp) int64 {
	t.Helper()
	v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r.header.Get("ETag"), `W/"`), `"`), 10, 64)
	if err != nil {
		t.Fatalf("ETag %q is not W/\"n\"", r.header.Get("ETag"))
	}
	return v
}

// pollUntil polls cond until it holds, failing t after timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDrainDelayConfig: --drain-delay takes a duration from 0 to 5m and
// --request-timeout 0 or 1s to 110s; anything else is refused at start with the
// flag named.
func TestDrainDelayConfig(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "drain.db")
	serve := func(args ...string) error {
		// Bounded, should a bad value ever be accepted and the server start.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--database", db}, args...), io.Discard, io.Discard)
	}
	for _, bad := range []string{"-1s", "6m"} {
		if err := serve("--drain-delay", bad); err == nil || !strings.Contains(err.Error(), "--drain-delay") {
			t.Errorf("--drain-delay %s: %v, want it refused", bad, err)
		}
	}
	for _, bad := range []string{"-1s", "500ms", "111s"} {
		if err := serve("--request-timeout", bad); err == nil || !strings.Contains(err.Error(), "--request-timeout") {
			t.Errorf("--request-timeout %s: %v, want it refused", bad, err)
		}
	}
	t.Setenv("SCIMD_DRAIN_DELAY", "soon")
	if err := serve(); err == nil || !strings.Contains(err.Error(), "--drain-delay") {
		t.Errorf("SCIMD_DRAIN_DELAY=soon: %v, want it refused", err)
	}
}

// testStalledDatabase: the database stops answering while connections stay open
// (a host that vanished without closing them). Requests already waiting on it end
// at --request-timeout with a 503 SCIM error and Retry-After instead of hanging,
// and once the database answers again the same process serves normally.
func testStalledDatabase(t *testing.T, bin string, db *replicaDatabase, token string) {
	proxy := startDBProxy(t, db.host)
	p := startScimd(t, bin, db.dsnVia(proxy.addr), "--request-timeout", "2s")
	p.waitReady(t)
	defer func() {
		if t.Failed() {
			t.Logf("log of the replica behind the stalled proxy (tail):\n%s", p.logTail())
		}
	}()
	client := &http.Client{Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	if r, err := send(client, "POST", p.url+"/scim/v2/Users", token, user("stall-before@example.com")); err != nil || r.status != 201 {
		t.Fatalf("create before the stall: %v %+v", err, r)
	}
	proxy.setStall(true)
	var wg sync.WaitGroup
	results := make([]resp, 4)
	errs := make([]error, 4)
	took := make([]time.Duration, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if i%2 == 0 {
				results[i], errs[i] = send(client, "POST", p.url+"/scim/v2/Users", token, user(fmt.Sprintf("stall-%d@example.com", i)))
			} else {
				results[i], errs[i] = send(client, "GET", p.url+"/scim/v2/Users?filter="+url.QueryEscape(`userName eq "stall-before@example.com"`), token, nil)
			}
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	proxy.setStall(false)
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d during the stall: %v (after %s)", i, errs[i], took[i])
		}
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(str(r.body, "detail"), "time limit") {
			t.Fatalf("request %d during the stall: %d %v %s, want 503 with Retry-After saying the time limit passed", i, r.status, r.header, r.raw)
		}
		if took[i] > 4*time.Second {
			t.Fatalf("request %d answered after %s with a 2s request timeout", i, took[i])
		}
	}
	pollUntil(t, 10*time.Second, "a create after the stall", func() bool {
		r, err := send(client, "POST", p.url+"/scim/v2/Users", token, user(fmt.Sprintf("stall-after-%d@example.com", time.Now().UnixNano())))
		return err == nil && r.status == 201
	})
	if strings.Contains(p.logTail(), "request failed") {
		t.Fatalf("the stall was logged as a server error:\n%s", p.logTail())
	}
}
