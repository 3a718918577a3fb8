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

// RateLimiter is a token bucket per key (an API token, or a client address for
// failed authentications): each key may make Rate requests a second on average and
// Burst at once, or its own rate and burst given to AllowRate. Memory is bounded: a
// bucket that has refilled completely is forgotten (a fresh bucket is the same), and
// at most MaxTokens buckets are kept; when a new key would exceed that, the least
// recently used bucket goes.
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
	tokens      float64
	last        time.Time
	rate, burst float64 // of the bucket's last use
}

// NewRateLimiter returns a limiter of rate requests a second and bursts of burst
// (burst < 1 means max(1, ceil(rate))), tracking at most maxTokens tokens (< 1 means
// DefaultRateLimitTokens). now is the clock; nil means time.Now. A rate of 0 or less
// returns nil, which allows everything.
func NewRateLimiter(rate float64, burst, maxTokens int, now func() time.Time) *RateLimiter {
	if !validRate(rate) {
		return nil
	}
	return newRateLimiter(rate, burst, maxTokens, now)
}

// newRateLimiter is NewRateLimiter without the nil for no rate: a limiter whose own
// rate is 0 allows everything through Allow and keeps buckets for AllowRate.
func newRateLimiter(rate float64, burst, maxTokens int, now func() time.Time) *RateLimiter {
	if !validRate(rate) {
		rate = 0
	}
	if maxTokens < 1 {
		maxTokens = DefaultRateLimitTokens
	}
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{rate: rate, burst: burstOf(rate, burst), max: maxTokens, now: now, buckets: map[string]*rateBucket{}}
}

func validRate(rate float64) bool { return rate > 0 && !math.IsNaN(rate) && !math.IsInf(rate, 0) }

// burstOf is the burst a limit of rate and burst allows: burst < 1 means
// max(1, ceil(rate)).
func burstOf(rate float64, burst int) float64 {
	if burst < 1 {
		return float64(max(1, int(math.Ceil(rate))))
	}
	return float64(burst)
}

// Allow takes one request from key's bucket. It returns nil, or a KindTooManyRequests
// error whose RetryAfter says when the next request will pass. A nil limiter allows
// everything.
func (l *RateLimiter) Allow(key string) error {
	if l == nil {
		return nil
	}
	return l.allow(key, l.rate, l.burst)
}

// AllowRate is Allow with rate and burst in place of the limiter's own, for a key
// whose limit differs (the tokens of a tenant with its own rate limit). burst < 1
// means max(1, ceil(rate)); a rate of 0 or less, or a nil limiter, allows
// everything. A bucket follows the rate and burst of its latest call.
func (l *RateLimiter) AllowRate(key string, rate float64, burst int) error {
	if l == nil || !validRate(rate) {
		return nil
	}
	return l.allow(key, rate, burstOf(rate, burst))
}

func (l *RateLimiter) allow(key string, rate, burst float64) error {
	if rate <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &rateBucket{tokens: burst, last: now}
		l.buckets[key] = b
	} else if elapsed := now.Sub(b.last).Seconds(); elapsed > 0 {
		b.tokens += elapsed * rate
		b.last = now
	}
	b.tokens = min(burst, b.tokens)
	b.rate, b.burst = rate, burst
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / rate * float64(time.Second))
	return &Error{Kind: KindTooManyRequests, RetryAfter: wait,
		Detail: "too many requests with this token; retry after " + RetryAfterSeconds(wait) + " s"}
}

// Wait returns how long until key's bucket holds a whole request again, without
// taking one: 0 when Allow would pass now. A nil limiter never waits.
func (l *RateLimiter) Wait(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	tokens := min(b.burst, b.tokens+max(0, l.now().Sub(b.last).Seconds())*b.rate)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / b.rate * float64(time.Second))
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
	every := time.Minute
	if l.rate > 0 {
		every = max(every, time.Duration(l.burst/l.rate*float64(time.Second)))
	}
	if len(l.buckets) < l.max && now.Sub(l.lastSweep) < every {
		return
	}
	l.lastSweep = now
	var oldest string
	var oldestAt time.Time
	found := false
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*b.rate >= b.burst {
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
