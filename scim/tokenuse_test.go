package scim_test

import (
	"context"
	"testing"
	"time"

	"github.com/scimd/scimd/scim"
)

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"127.0.0.1:5555", "127.0.0.1"},
		{"192.0.2.7:443", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"}, // IPv4 over an IPv6 socket
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:80", "2001:db8:1:2::/64"}, // same /64, same client
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"[::1]:8080", "::/64"},
		{"not an address", "not an address"},
	} {
		if got := scim.ClientKey(tc.remote); got != tc.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
	ctx := scim.WithClientAddr(context.Background(), "192.0.2.7")
	if got := scim.ClientAddr(ctx); got != "192.0.2.7" {
		t.Errorf("ClientAddr = %q", got)
	}
	if got := scim.ClientAddr(context.Background()); got != "" {
		t.Errorf("ClientAddr of a bare context = %q, want none", got)
	}
}

// TestRateLimiterAddresses is the failed-authentication throttle's limiter as
// serve builds it by default (1 a second, bursts of 20), keyed by client address:
// one address running out leaves every other untouched, and Wait reports the
// refusal without spending anything.
func TestRateLimiterAddresses(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := scim.NewRateLimiter(1, 20, 0, c.now)
	if got := allowN(l, "192.0.2.1", 25); got != 20 {
		t.Fatalf("%d of 25 failures counted before the limit, want the burst of 20", got)
	}
	if w := l.Wait("192.0.2.1"); w != time.Second {
		t.Fatalf("Wait = %s, want 1s", w)
	}
	if w := l.Wait("192.0.2.1"); w != time.Second {
		t.Fatalf("Wait spent something: second Wait = %s", w)
	}
	for _, other := range []string{"192.0.2.2", "2001:db8::/64"} {
		if w := l.Wait(other); w != 0 {
			t.Errorf("another address waits %s", w)
		}
		if got := allowN(l, other, 20); got != 20 {
			t.Errorf("another address got %d of its 20", got)
		}
	}
	c.advance(400 * time.Millisecond)
	if w := l.Wait("192.0.2.1"); w != 600*time.Millisecond {
		t.Errorf("Wait after 400ms = %s, want 600ms", w)
	}
	c.advance(600 * time.Millisecond)
	if w := l.Wait("192.0.2.1"); w != 0 {
		t.Errorf("Wait after a refill = %s, want 0", w)
	}
}

func TestRateLimiterAllowRate(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := scim.NewRateLimiter(2, 3, 0, c.now)
	take := func(key string, rate float64, burst, n int) int {
		ok := 0
		for range n {
			if l.AllowRate(key, rate, burst) == nil {
				ok++
			}
		}
		return ok
	}
	if got := take("own", 1, 5, 8); got != 5 {
		t.Errorf("own rate: %d passed, want its burst of 5", got)
	}
	err := l.AllowRate("own", 1, 5)
	if e := scim.AsError(err); e.Kind != scim.KindTooManyRequests || e.RetryAfter != time.Second {
		t.Errorf("over its own rate: %v (retry %s), want 429 after 1s at 1/s", err, e.RetryAfter)
	}
	if got := allowN(l, "server", 5); got != 3 {
		t.Errorf("the limiter's own rate: %d passed, want 3", got)
	}
	if got := take("none", 0, 0, 50); got != 50 {
		t.Errorf("rate 0 (unlimited): %d of 50 passed", got)
	}
	if got := take("rounded", 2.5, 0, 10); got != 3 {
		t.Errorf("burst 0 at 2.5/s: %d passed, want 3", got)
	}
	// A key's bucket follows a changed limit: a smaller burst caps what is left.
	c.advance(time.Hour)
	if got := take("own", 1, 2, 5); got != 2 {
		t.Errorf("after lowering the burst to 2: %d passed", got)
	}
	var nilLimiter *scim.RateLimiter
	if nilLimiter.AllowRate("x", 1, 1) != nil || nilLimiter.Wait("x") != 0 {
		t.Error("a nil limiter refused or made wait")
	}
}
