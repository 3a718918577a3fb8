package postgres_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/scimd/scimd/store"
	pgstore "github.com/scimd/scimd/store/postgres"
	"github.com/scimd/scimd/store/storetest"
)

// TestStore runs the store conformance suite on a fresh schema per case of the
// database at SCIMD_TEST_POSTGRES_URL. Without it the test is skipped, except under
// CI=true, where storetest.Backends fails it.
func TestStore(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		if b.Name == "postgres" {
			storetest.Run(t, func(t testing.TB) store.Store { return b.Open(t) })
			return
		}
	}
	t.Skipf("PostgreSQL conformance suite skipped: %s is not set", storetest.PostgresEnv)
}

// TestUnreachableServer stops answering under an open store, as a database host
// that dropped off the network does: connections are cut and new ones are accepted
// but never answered. A store call must then fail with store.ErrUnavailable (a 503
// with Retry-After at the API) after DefaultConnectTimeout, not hang for the
// operating system's connect timeout.
func TestUnreachableServer(t *testing.T) {
	base := os.Getenv(storetest.PostgresEnv)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s is not set", storetest.PostgresEnv)
		}
		t.Skipf("needs PostgreSQL: set %s", storetest.PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		stalled bool
		conns   []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if stalled { // held open, never answered
				mu.Unlock()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				mu.Unlock()
				c.Close()
				continue
			}
			conns = append(conns, up)
			mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	u.Host = ln.Addr().String()
	st, err := pgstore.Open(u.String(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sqlDB, err := st.DB().DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxIdleConns(0) // the next call dials anew
	mu.Lock()
	stalled = true
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	mu.Unlock()

	// The context only bounds the test should the connect timeout be missing.
	ctx, cancel := context.WithTimeout(context.Background(), pgstore.DefaultConnectTimeout+10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = st.TenantByName(ctx, "acme")
	took := time.Since(start)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("unanswered connection: %v, want store.ErrUnavailable", err)
	}
	if took < pgstore.DefaultConnectTimeout-time.Second || took > pgstore.DefaultConnectTimeout+3*time.Second {
		t.Errorf("failed after %v, want about DefaultConnectTimeout (%v)", took, pgstore.DefaultConnectTimeout)
	}
}
