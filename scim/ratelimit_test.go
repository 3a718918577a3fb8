package scim_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// allowN takes n requests for key and returns how many passed.
func allowN(l *scim.RateLimiter, key string, n int) int {
	ok := 0
	for range n {
		if l.Allow(key) == nil {
			ok++
		}
	}
	return ok
}

func TestRateLimiter(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, l *scim.RateLimiter, c *clock)
	}{
		{"burst_then_refused", func(t *testing.T, l *scim.RateLimiter, c *clock) {
			if got := allowN(l, "a", 5); got != 3 {
				t.Fatalf("%d of 5 passed, want the burst of 3", got)
			}
			err := l.Allow("a")
			e := scim.AsError(err)
			if e.Kind != scim.KindTooManyRequests || e.RetryAfter != 500*time.Millisecond {
				t.Fatalf("got %v kind %d retry %s, want KindTooManyRequests after 500ms", err, e.Kind, e.RetryAfter)
			}
			if v, ok := scim.RetryAfter(fmt.Errorf("wrapped: %w", err)); !ok || v != "1" {
				t.Errorf("Retry-After %q %v, want 1 (rounded up)", v, ok)
			}
		}},
		{"refills_at_rate", func(t *testing.T, l *scim.RateLimiter, c *clock) {
			allowN(l, "a", 3)
			c.advance(499 * time.Millisecond)
			if l.Allow("a") == nil {
				t.Fatal("passed before a whole request refilled")
			}
			c.advance(time.Millisecond)
			if l.Allow("a") != nil {
				t.Fatal("refused after 500ms at 2/s")
			}
			c.advance(time.Hour)
			if got := allowN(l, "a", 5); got != 3 {
				t.Fatalf("after a long pause %d passed, want no more than the burst of 3", got)
			}
		}},
		{"tokens_independent", func(t *testing.T, l *scim.RateLimiter, c *clock) {
			allowN(l, "a", 5)
			if got := allowN(l, "b", 3); got != 3 {
				t.Fatalf("another token got %d of its 3", got)
			}
		}},
		{"full_buckets_forgotten", func(t *testing.T, l *scim.RateLimiter, c *clock) {
			allowN(l, "a", 1)
			allowN(l, "b", 3)
			c.advance(2 * time.Minute) // both full again, and a sweep is due
			allowN(l, "c", 1)
			if got := l.Len(); got != 1 {
				t.Fatalf("%d buckets tracked, want only c's", got)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			tc.run(t, scim.NewRateLimiter(2, 3, 0, c.now), c)
		})
	}
}

// TestRateLimiterCap: however many tokens come, at most maxTokens buckets are kept,
// and the one evicted is the least recently used.
func TestRateLimiterCap(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := scim.NewRateLimiter(1, 2, 3, c.now)
	for i := range 100 {
		l.Allow(fmt.Sprint("t", i%7))
		l.Allow(fmt.Sprint("t", i%7)) // empty the bucket: nothing is full, so only the cap evicts
		c.advance(time.Millisecond)
		if n := l.Len(); n > 3 {
			t.Fatalf("%d buckets after %d tokens, cap 3", n, i+1)
		}
	}
	// x, y, z in that order; a fourth token evicts x, the least recently used, so x
	// gets a full bucket again while z keeps its empty one.
	l = scim.NewRateLimiter(1, 2, 3, c.now)
	for _, k := range []string{"x", "y", "z"} {
		allowN(l, k, 2)
		c.advance(time.Millisecond)
	}
	allowN(l, "w", 1)
	if l.Allow("z") == nil {
		t.Error("z, recently used, lost its bucket")
	}
	if l.Allow("x") != nil {
		t.Error("x, least recently used, was not evicted")
	}
}

func TestRateLimiterOff(t *testing.T) {
	var l *scim.RateLimiter = scim.NewRateLimiter(0, 10, 0, nil)
	if l != nil {
		t.Fatal("rate 0 must turn the limit off")
	}
	if got := allowN(l, "a", 1000); got != 1000 {
		t.Fatalf("a nil limiter refused %d", 1000-got)
	}
	// Burst 0 means the rate rounded up, at least 1.
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	if got := allowN(scim.NewRateLimiter(2.5, 0, 0, c.now), "a", 10); got != 3 {
		t.Errorf("rate 2.5, burst 0: %d passed, want 3", got)
	}
	if got := allowN(scim.NewRateLimiter(0.1, 0, 0, c.now), "a", 10); got != 1 {
		t.Errorf("rate 0.1, burst 0: %d passed, want 1", got)
	}
}
