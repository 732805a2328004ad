// Package client compares the retries of tollgate's Go client with
// hashicorp/go-retryablehttp (v0.7.8, defaults) and with the naive loop of
// the contract's own example (3 tries, waits of 2^i seconds), against
// httptest servers, so that benchstat can put them side by side:
//
//	go test -run '^$' -bench . -benchtime 1x ./client/ | tee raw.txt
//	benchstat -col /impl raw.txt
//
// RateLimited: 8 workers make 1,000 calls to a server that admits 50
// requests per second (GCRA, burst 50) and answers the rest with 429,
// Retry-After and X-RateLimit-*. It reports the 429s the server sent
// (429s/op), the completion time over the ideal N/rate = 20 s (x-ideal; the
// burst makes 0.95 the floor), the calls that gave up (failed/op) and the
// attempts per call. It runs twice, once for each reading of
// X-RateLimit-Reset when Remaining is 0 (see gcra). tollgate-nopace is the
// tollgate client with pacing off.
//
// Outage: every request fails with 503 and Retry-After: 1. It reports the
// attempts the server saw per call after 100 warm-up calls have spent the
// tollgate client's retry-budget floor (attempts/call), and counting them
// (cold-attempts/call).
//
// Time: the server and every client read one clock (clock) that may run
// faster than the wall clock, and every wait is divided by the same factor
// (tollgate through WithClock, go-retryablehttp by wrapping its Backoff
// function, the naive loop in its own sleep), so seconds in headers are the
// scenario's seconds and all ratios are those of the real-time scenario.
// RateLimited runs in real time unless TOLLGATE_BENCH_SCALE says otherwise
// (scheduling delays are dilated too, so keep it at 1 on a loaded machine);
// Outage, which measures no time, runs 1000 times faster.
package client

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
)

// clock is a dilated clock: Now runs scale times faster than the wall
// clock, and Sleep(d) sleeps d/scale of wall time.
type clock struct {
	start time.Time
	scale float64
}

func newClock(scale float64) *clock { return &clock{start: time.Now(), scale: scale} }

func (c *clock) Now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.start)) * c.scale))
}

func (c *clock) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.scale) }

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	return client.Sleep(ctx, c.Real(d))
}

// gcra is a token-bucket (GCRA) rate limiter as an HTTP handler, in dilated
// time. It answers 200 with a lead, or 429 RATE_LIMITED with Retry-After
// and details.retry_after (whole seconds, rounded up, at least 1), and
// X-RateLimit-Limit/-Remaining/-Reset on every response.
//
// X-RateLimit-Reset is unix seconds, rounded up. resetNext chooses what it
// means when Remaining is 0: true gives the time the next request will be
// admitted (the reading under which Reset can stand in for Retry-After, as
// the contract's client rule uses it); false gives the time the bucket is
// full again (redis_rate's ResetAfter) in every case. tollgate's
// middleware emits the first reading (resetNext true).
type gcra struct {
	clk       *clock
	interval  time.Duration // T = window / limit
	burst     int
	resetNext bool

	mu  sync.Mutex
	tat time.Time

	hits, limited atomic.Int64
}

func (g *gcra) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.hits.Add(1)
	now := g.clk.Now()
	T := g.interval
	tau := T * time.Duration(g.burst)

	g.mu.Lock()
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	allowed := tat.Add(T).Sub(now) <= tau
	if allowed {
		tat = tat.Add(T)
		g.tat = tat
	}
	g.mu.Unlock()

	remaining := max(int((tau-tat.Sub(now))/T), 0)
	next := max(tat.Add(T-tau).Sub(now), 0) // until the next admission
	full := tat.Sub(now)                    // until the bucket is full
	reset := full
	if g.resetNext && remaining == 0 {
		reset = next
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(g.burst))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(ceilUnix(now.Add(reset)), 10))
	if !allowed {
		g.limited.Add(1)
		apierror.Write(w, r, apierror.New(apierror.RateLimited, "").
			With("limit", g.burst).With("window", (T*time.Duration(g.burst)).String()).
			With("policy", "bench").WithRetryAfter(next))
		return
	}
	h.Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"id":"lead_1","name":"Ada","status":"new","createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`)
}

func ceilUnix(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}

// outage answers every request with 503 and Retry-After: 1.
type outage struct{ hits atomic.Int64 }

func (o *outage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.hits.Add(1)
	apierror.Write(w, r, apierror.New(apierror.ServiceUnavailable, "").With("reason", "maintenance").WithRetryAfter(time.Second))
}

// caller makes one logical call and reports whether it succeeded.
type caller func(ctx context.Context) bool

// peer builds a caller for one client kind against url, in clk's time.
type peer struct {
	name string
	new  func(url string, clk *clock) caller
}

func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

var peers = []peer{
	{"tollgate", func(url string, clk *clock) caller {
		c, err := client.New(url, client.WithAPIKey("tg_test_bench"), client.WithHTTPClient(newHTTPClient()),
			client.WithClock(clk.Now, clk.Sleep))
		if err != nil {
			panic(err)
		}
		return func(ctx context.Context) bool {
			_, err := c.Leads.Get(ctx, "lead_1")
			return err == nil
		}
	}},
	{"tollgate-nopace", func(url string, clk *clock) caller {
		c, err := client.New(url, client.WithAPIKey("tg_test_bench"), client.WithHTTPClient(newHTTPClient()),
			client.WithClock(clk.Now, clk.Sleep), client.WithRetry(client.Policy{DisablePacing: true}))
		if err != nil {
			panic(err)
		}
		return func(ctx context.Context) bool {
			_, err := c.Leads.Get(ctx, "lead_1")
			return err == nil
		}
	}},
	{"retryablehttp", func(url string, clk *clock) caller {
		c := retryablehttp.NewClient() // defaults: 4 retries, 1s..30s, Retry-After on 429/503
		c.HTTPClient = newHTTPClient()
		c.Logger = nil
		c.Backoff = func(min, max time.Duration, n int, resp *http.Response) time.Duration {
			return clk.Real(retryablehttp.DefaultBackoff(min, max, n, resp))
		}
		return func(ctx context.Context) bool {
			req, err := retryablehttp.NewRequestWithContext(ctx, "GET", url+"/v1/leads/lead_1", nil)
			if err != nil {
				panic(err)
			}
			req.Header.Set("Authorization", "Bearer tg_test_bench")
			resp, err := c.Do(req)
			if err != nil {
				return false
			}
			drainClose(resp)
			return resp.StatusCode == 200
		}
	}},
	{"naive", func(url string, clk *clock) caller {
		hc := newHTTPClient()
		return func(ctx context.Context) bool {
			for i := range 3 {
				req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/leads/lead_1", nil)
				req.Header.Set("Authorization", "Bearer tg_test_bench")
				resp, err := hc.Do(req)
				if err == nil {
					drainClose(resp)
					if resp.StatusCode == 200 {
						return true
					}
					if resp.StatusCode != 429 && resp.StatusCode < 500 {
						return false
					}
				}
				if i < 2 {
					_ = clk.Sleep(ctx, time.Duration(1<<i)*time.Second)
				}
			}
			return false
		}
	}},
}

func drainClose(resp *http.Response) {
	buf := make([]byte, 4096)
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
}

// run makes n calls with workers goroutines and returns how many failed.
func run(ctx context.Context, call caller, n, workers int) (failed int64) {
	var next, fails atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if !call(ctx) {
					fails.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return fails.Load()
}

// rateScale dilates time in RateLimited: 1 is real time (the ideal run
// is 20 s); TOLLGATE_BENCH_SCALE=4 runs it in 5 s on a quiet machine.
// Scheduling delays are dilated too, so keep it low on a loaded one.
var rateScale = func() float64 {
	if f, err := strconv.ParseFloat(os.Getenv("TOLLGATE_BENCH_SCALE"), 64); err == nil && f > 0 {
		return f
	}
	return 1
}()

const (
	rateCalls   = 1000
	rateWorkers = 8
	ratePerSec  = 50

	outageWarm    = 100
	outageCalls   = 1000
	outageWorkers = 8
	outageScale   = 1000
)

func BenchmarkRateLimited(b *testing.B) {
	ideal := time.Duration(rateCalls) * time.Second / ratePerSec
	for _, mode := range []struct {
		name string
		next bool
	}{{"reset=next", true}, {"reset=full", false}} {
		for _, p := range peers {
			b.Run(mode.name+"/impl="+p.name, func(b *testing.B) {
				var limited, fails, hits int64
				var elapsed time.Duration
				for range b.N {
					clk := newClock(rateScale)
					g := &gcra{clk: clk, interval: time.Second / ratePerSec, burst: ratePerSec, resetNext: mode.next}
					srv := httptest.NewServer(g)
					call := p.new(srv.URL, clk)
					start := clk.Now()
					fails += run(context.Background(), call, rateCalls, rateWorkers)
					elapsed += clk.Now().Sub(start)
					srv.Close()
					limited += g.limited.Load()
					hits += g.hits.Load()
				}
				n := float64(b.N)
				b.ReportMetric(float64(limited)/n, "429s/op")
				b.ReportMetric(elapsed.Seconds()/n/ideal.Seconds(), "x-ideal")
				b.ReportMetric(float64(fails)/n, "failed/op")
				b.ReportMetric(float64(hits)/n/rateCalls, "attempts/call")
			})
		}
	}
}

func BenchmarkOutage(b *testing.B) {
	for _, p := range peers {
		b.Run("impl="+p.name, func(b *testing.B) {
			var warmHits, hits, fails int64
			for range b.N {
				clk := newClock(outageScale)
				o := &outage{}
				srv := httptest.NewServer(o)
				call := p.new(srv.URL, clk)
				run(context.Background(), call, outageWarm, outageWorkers)
				warm := o.hits.Load()
				fails += run(context.Background(), call, outageCalls, outageWorkers)
				srv.Close()
				warmHits += warm
				hits += o.hits.Load() - warm
			}
			n := float64(b.N)
			b.ReportMetric(float64(hits)/n/outageCalls, "attempts/call")
			b.ReportMetric(float64(hits+warmHits)/n/(outageCalls+outageWarm), "cold-attempts/call")
			b.ReportMetric(float64(fails)/n, "failed/op")
		})
	}
}
