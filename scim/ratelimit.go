package scim

import (
	"errors"
	"math"
	"strconv"
	"sync"
	"time"
)

// DefaultRateLimitTokens is how many tokens a RateLimiter tracks at most.
const DefaultRateLimitTokens = 10000

// RateLimiter is a token bucket per API token: each token may make Rate requests a
// second on average and Burst at once. Memory is bounded: a bucket that has refilled
// completely is forgotten (a fresh bucket is the same), and at most MaxTokens buckets
// are kept; when a new token would exceed that, the least recently used bucket goes.
type RateLimiter struct {
	rate  float64 // requests per second
	burst float64
	max   int
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rateBucket
	lastSweep time.Time
}

type rateBucket struct {
	tokens float64
	last   time.Time
}

// NewRateLimiter returns a limiter of rate requests a second and bursts of burst
// (burst < 1 means max(1, ceil(rate))), tracking at most maxTokens tokens (< 1 means
// DefaultRateLimitTokens). now is the clock; nil means time.Now. A rate of 0 or less
// returns nil, which allows everything.
func NewRateLimiter(rate float64, burst, maxTokens int, now func() time.Time) *RateLimiter {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Ceil(rate)))
	}
	if maxTokens < 1 {
		maxTokens = DefaultRateLimitTokens
	}
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{rate: rate, burst: float64(burst), max: maxTokens, now: now, buckets: map[string]*rateBucket{}}
}

// Allow takes one request from key's bucket. It returns nil, or a KindTooManyRequests
// error whose RetryAfter says when the next request will pass. A nil limiter allows
// everything.
func (l *RateLimiter) Allow(key string) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &rateBucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	} else if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+elapsed*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return &Error{Kind: KindTooManyRequests, RetryAfter: wait,
		Detail: "too many requests with this token; retry after " + RetryAfterSeconds(wait) + " s"}
}

// Len returns how many tokens are tracked.
func (l *RateLimiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// makeRoom forgets full buckets (at most once a minute or per refill period, or
// whenever the map is full) and, if the map is still full, the least recently used bucket. The caller
// holds l.mu.
func (l *RateLimiter) makeRoom(now time.Time) {
	// A bucket is full again burst/rate after its last use; sweeping more often
	// finds nothing new, and the cap bounds memory in between.
	every := max(time.Minute, time.Duration(l.burst/l.rate*float64(time.Second)))
	if len(l.buckets) < l.max && now.Sub(l.lastSweep) < every {
		return
	}
	l.lastSweep = now
	var oldest string
	var oldestAt time.Time
	found := false
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
			continue
		}
		if !found || b.last.Before(oldestAt) {
			oldest, oldestAt, found = k, b.last, true
		}
	}
	if found && len(l.buckets) >= l.max {
		delete(l.buckets, oldest)
	}
}

// RetryAfterSeconds formats d as a Retry-After value (RFC 9110 §10.2.3): whole
// seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// RetryAfter returns the Retry-After value for a KindTooManyRequests error in err's
// chain; ok is false for any other error.
func RetryAfter(err error) (value string, ok bool) {
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTooManyRequests {
		return "", false
	}
	return RetryAfterSeconds(e.RetryAfter), true
}
