package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the outcome of one scenario on one side (scimd or the database alone).
type Result struct {
	Scenario string  `json:"scenario"`
	Side     string  `json:"side"`
	Ops      int     `json:"ops"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"req_per_s"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	FirstErr string  `json:"first_error,omitempty"`
	// ServerRSS is scimd's resident set in bytes right after the scenario (scimd
	// side, when scimbench started the server).
	ServerRSS int64 `json:"server_rss_bytes,omitempty"`
}

// load describes one bounded run: at most MaxOps operations and at most MaxTime,
// spread over Workers goroutines.
type load struct {
	Workers int
	MaxOps  int
	MaxTime time.Duration
}

// opFunc runs operation i on worker w. It must honour ctx.
type opFunc func(ctx context.Context, w, i int, rng *rand.Rand) error

// run executes op under l and measures every operation. A panic in op counts as an
// error of that operation.
func run(ctx context.Context, scenario, side string, l load, op opFunc) Result {
	if l.Workers < 1 {
		l.Workers = 1
	}
	ctx, cancel := context.WithTimeout(ctx, l.MaxTime)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var firstErr string
	start := time.Now()
	var wg sync.WaitGroup
	for w := range l.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w)))
			local := make([]time.Duration, 0, 1024)
			var nerr int
			var ferr string
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= l.MaxOps {
					break
				}
				t0 := time.Now()
				err := safe(func() error { return op(ctx, w, i, rng) })
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // the time bound cut this operation short
					}
					nerr++
					if ferr == "" {
						ferr = err.Error()
					}
				}
				local = append(local, d)
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += nerr
			if firstErr == "" {
				firstErr = ferr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarize(scenario, side, lat, errs, firstErr, time.Since(start))
}

func safe(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return f()
}

func summarize(scenario, side string, lat []time.Duration, errs int, firstErr string, elapsed time.Duration) Result {
	r := Result{Scenario: scenario, Side: side, Ops: len(lat), Errors: errs, Seconds: elapsed.Seconds(), FirstErr: firstErr}
	if len(lat) == 0 {
		return r
	}
	slices.Sort(lat)
	r.RPS = float64(len(lat)) / elapsed.Seconds()
	r.P50, r.P95, r.P99 = pct(lat, 0.50), pct(lat, 0.95), pct(lat, 0.99)
	return r
}

// pct is the q-quantile of sorted durations, in milliseconds (nearest rank).
func pct(sorted []time.Duration, q float64) float64 {
	i := int(float64(len(sorted))*q+0.5) - 1
	i = min(max(i, 0), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}
