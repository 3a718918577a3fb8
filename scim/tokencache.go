package scim

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/scimd/scimd/store"
)

// DefaultTokenCacheRefresh is how often a process polls the token epoch (see
// WatchTokens) when caching principals.
const DefaultTokenCacheRefresh = 50 * time.Millisecond

// tokenCacheMax bounds the principals one process keeps; past it the cache starts
// over.
const tokenCacheMax = 10_000

// tokenCache keeps the token rows this process accepted, so that a request with a
// known token costs no statement. It is only trusted while it is known to be
// fresh: store.TokenEpoch moves (by trigger, in the same transaction) with every
// change to a token or tenant a principal shows, WatchTokens polls it, and an entry
// is served only until a little after the last poll that found the epoch unchanged
// (live). So a revocation, expiry change, scope change or tenant-settings change
// made anywhere — another replica, the CLI, plain SQL — is seen by every process
// within live's margin; one made through this process's Tokens clears the cache
// at once. When polling fails or stops, live passes and every request reads its
// token row again, as with no cache.
type tokenCache struct {
	refresh time.Duration // poll interval
	margin  time.Duration // how long after a poll began its answer is trusted

	mu    sync.Mutex
	m     map[[32]byte]store.Token
	gen   uint64    // moves on every clear; an entry read before a clear is not kept
	epoch int64     // token_epoch at the last successful poll (when live is set)
	live  time.Time // entries are served until then; zero until a poll succeeds
}

func newTokenCache(refresh time.Duration) *tokenCache {
	return &tokenCache{refresh: refresh, margin: 3 * refresh, m: map[[32]byte]store.Token{}}
}

// get returns the cached token of h when the cache is live, and the generation a
// row read now must be stored under (see put).
func (c *tokenCache) get(h [32]byte, now time.Time) (store.Token, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !now.Before(c.live) {
		return store.Token{}, false, c.gen
	}
	tok, ok := c.m[h]
	return tok, ok, c.gen
}

// put keeps tok, read from the database after get returned gen, unless the cache
// was cleared since (the row may predate the change that cleared it) or is not live.
func (c *tokenCache) put(h [32]byte, tok store.Token, gen uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !now.Before(c.live) {
		return
	}
	if len(c.m) >= tokenCacheMax {
		clear(c.m)
	}
	c.m[h] = tok
}

// drop forgets every entry.
func (c *tokenCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
}

func (c *tokenCache) dropLocked() {
	clear(c.m)
	c.gen++
}

// observe records the answer of a poll begun at began: the cache stays live until
// began + margin, and is cleared first when the epoch moved.
func (c *tokenCache) observe(epoch int64, began time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live.IsZero() || epoch != c.epoch {
		c.dropLocked()
	}
	c.epoch, c.live = epoch, began.Add(c.margin)
}

// lost records a failed poll: nothing cached is served until a poll succeeds.
func (c *tokenCache) lost() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
	c.live = time.Time{}
}

// WithTokenCache makes Tokens keep the token rows it accepted (see tokenCache),
// trusted while WatchTokens, polling every refresh, finds them current. Without
// WatchTokens running nothing is served from it. refresh 0 means no cache: every
// request reads its token row.
func WithTokenCache(refresh time.Duration) TokensOption {
	return func(t *Tokens) {
		if refresh > 0 {
			t.cache = newTokenCache(refresh)
		}
	}
}

// WatchTokens polls the token epoch until ctx ends, keeping the token cache
// (WithTokenCache) live while the epoch is readable and clearing it when the epoch
// moves. It returns at once without a cache.
func (t *Tokens) WatchTokens(ctx context.Context) {
	c := t.cache
	if c == nil {
		return
	}
	tick := time.NewTicker(c.refresh)
	defer tick.Stop()
	failing := false
	for {
		began := time.Now()
		pctx, cancel := context.WithTimeout(ctx, c.margin)
		epoch, err := t.st.TokenEpoch(pctx)
		cancel()
		switch {
		case err != nil:
			c.lost()
			if !failing && ctx.Err() == nil {
				t.log.Warn("token cache off: cannot read the token epoch; every request reads its token", zap.Error(err))
			}
			failing = true
		default:
			c.observe(epoch, began)
			if failing {
				t.log.Info("token cache on again")
			}
			failing = false
		}
		select {
		case <-ctx.Done():
			c.lost()
			return
		case <-tick.C:
		}
	}
}

// forgetAll clears the token cache after a change this process made, so that its
// own next request sees it without waiting for a poll.
func (t *Tokens) forgetAll() {
	if t.cache != nil {
		t.cache.drop()
	}
}
