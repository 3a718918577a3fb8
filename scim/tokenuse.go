package scim

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// LastUseInterval is how precisely a token's last use is kept: each process writes
// it at most once per interval per token, and not at all while the stored value is
// younger (another replica wrote it).
const LastUseInterval = time.Minute

// lastUseWriters bounds the last-use writes in flight; a use that finds them all
// busy is recorded by a later request instead.
const lastUseWriters = 4

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the address of the client a request comes
// from (see ClientKey), which failed authentications are counted against.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// ClientAddr returns the client address WithClientAddr stored; "" when none.
func ClientAddr(ctx context.Context) string {
	a, _ := ctx.Value(clientAddrKey{}).(string)
	return a
}

// ClientKey returns the address failed authentications from remoteAddr (a
// "host:port" as in http.Request.RemoteAddr) are counted under: the IP address, or
// for IPv6 its /64 network, since one client commonly holds a whole /64.
func ClientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// tokenUses remembers, per token secret hash, when this process last accepted the
// token and last wrote its last use. It is what keeps last-use writes to one per
// interval, and what lets a token this process has accepted before through an
// address whose failed authentications are being throttled (WithAuthFailLimiter). It never decides that a token is valid: that is the
// token row's (read on every request, or from the token cache while it is
// current, see tokenCache).
type tokenUses struct {
	max int

	mu sync.Mutex
	m  map[[32]byte]*tokenUse

	writers chan struct{}
	wg      sync.WaitGroup
}

type tokenUse struct {
	seen, written time.Time
}

func newTokenUses(max int) *tokenUses {
	return &tokenUses{max: max, m: map[[32]byte]*tokenUse{}, writers: make(chan struct{}, lastUseWriters)}
}

// known reports whether this process has accepted the token with hash h.
func (u *tokenUses) known(h [32]byte) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	_, ok := u.m[h]
	return ok
}

// forget drops h, a token that was just refused.
func (u *tokenUses) forget(h [32]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, h)
}

// note records that tok (whose secret hashes to h) was accepted at now and, when
// its last use is due to be written, starts the write in the background.
func (t *Tokens) noteUse(ctx context.Context, tok store.Token, h [32]byte, now time.Time) {
	u := t.uses
	u.mu.Lock()
	defer u.mu.Unlock()
	e, ok := u.m[h]
	if !ok {
		u.makeRoom(now)
		e = &tokenUse{}
		u.m[h] = e
	}
	e.seen = now
	if tok.LastUsedAt != nil && tok.LastUsedAt.After(e.written) {
		e.written = *tok.LastUsedAt // written by another replica, or before a restart
	}
	if now.Sub(e.written) < LastUseInterval {
		return
	}
	select {
	case u.writers <- struct{}{}:
	default:
		return // all writers busy: a later request records it
	}
	e.written = now
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.writers }()
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := t.st.TouchToken(wctx, tok.TenantID, tok.ID, now, LastUseInterval); err != nil {
			t.log.Warn("cannot record the last use of a token", zap.String("tenant_id", tok.TenantID), zap.String("token_id", tok.ID), zap.Error(err))
			u.mu.Lock()
			if e.written.Equal(now) {
				e.written = time.Time{} // retried by the next request
			}
			u.mu.Unlock()
		}
	}()
}

// makeRoom keeps the map under max entries: when full, it forgets tokens not seen
// within LastUseInterval and, if none were, the least recently seen one. The caller
// holds u.mu.
func (u *tokenUses) makeRoom(now time.Time) {
	if len(u.m) < u.max {
		return
	}
	var oldest [32]byte
	var oldestAt time.Time
	found := false
	for h, e := range u.m {
		if now.Sub(e.seen) >= LastUseInterval {
			delete(u.m, h)
			continue
		}
		if !found || e.seen.Before(oldestAt) {
			oldest, oldestAt, found = h, e.seen, true
		}
	}
	if found && len(u.m) >= u.max {
		delete(u.m, oldest)
	}
}

// Flush waits for the last-use writes in flight; serve calls it before closing the
// store.
func (t *Tokens) Flush() { t.uses.wg.Wait() }
