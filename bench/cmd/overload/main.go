// Command overload measures how tollgate serve holds up when offered
// -factor × what it can hold (run by bench/overload.sh, with the server on
// its own core and this generator on another). It sends only to the -base
// address, which must be on loopback.
//
// Every request is POST /v1/leads with a unique phone number, written as
// raw HTTP/1.1 on a kept-alive net.Conn from a buffer reused per
// connection, and its response is read with http.ReadResponse; nothing
// else runs on the hot path, so one core can offer tens of thousands of
// requests a second.
//
// Phase 1 (capacity) runs -clients closed-loop clients for -duration, each
// sending its next request when the previous one is answered: capacity is
// the number of 201s per second, and the p99 of their latencies is the
// unloaded p99.
//
// Phase 2 (overload) is open loop, like wrk2: request i is due at
// start + i/rate, rate = -factor × capacity, whatever the server does. A
// single dispatcher wakes at least every millisecond, hands every request
// that has come due to a connection worker through a buffered channel, and
// starts another worker (up to -conns, one connection each) when none is
// idle. Latency is measured from the scheduled time, not from the write, so
// time spent waiting for a free connection counts (no coordinated
// omission). A request that cannot be handed over because every connection
// is busy and the queue is full is counted as "generator could not send";
// a valid run has none. The report also gives how late the dispatcher itself
// handed requests over (timer granularity, about 1 ms); that delay is part of
// the measured latencies, so it must stay small next to them.
//
// With -rounds N the two phases alternate N times, each overload phase
// offered against the capacity measured just before it, and a summary gives
// the median of the rounds' ratios: the disk's sync latency, and with it
// the capacity, drifts over tens of seconds on a shared host, and pairing
// phases seconds apart keeps that drift out of the ratio. The summary also
// gives the ratio of the pooled p99s: every admitted request of the run
// against every request of its capacity phases.
package main

import (
	"bufio"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("overload", flag.ContinueOnError)
	base := fs.String("base", "http://127.0.0.1:18100", "server (loopback only)")
	key := fs.String("key", "", "API key with leads:write")
	clients := fs.Int("clients", 4, "closed-loop clients for the capacity run (= the server's --max-concurrency)")
	factor := fs.Float64("factor", 4, "offered load as a multiple of capacity")
	dur := fs.Duration("duration", 5*time.Second, "length of each phase")
	conns := fs.Int("conns", 512, "most connections for the overload phase")
	timeout := fs.Duration("timeout", 10*time.Second, "per-request timeout")
	rounds := fs.Int("rounds", 1, "capacity + overload pairs to run, each overload offered against the capacity just measured")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		return fmt.Errorf("-base must be a loopback address")
	}
	if u.Scheme != "http" {
		return fmt.Errorf("-base must be http://")
	}
	if *key == "" || strings.ContainsAny(*key, "\r\n ") {
		return fmt.Errorf("-key must be an API key")
	}
	if *clients < 1 || *conns < 1 || *factor <= 0 || *dur <= 0 || *timeout <= 0 || *rounds < 1 {
		return fmt.Errorf("-clients, -conns, -factor, -duration, -timeout and -rounds must be positive")
	}
	t := &target{
		addr:    net.JoinHostPort(u.Hostname(), cmp.Or(u.Port(), "80")),
		head:    fmt.Sprintf("POST %s/v1/leads HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: ", strings.TrimSuffix(u.EscapedPath(), "/"), u.Host, *key),
		timeout: *timeout,
	}

	var results []roundResult
	for r := 1; r <= *rounds; r++ {
		if *rounds > 1 {
			fmt.Printf("== round %d of %d\n", r, *rounds)
		}
		res, err := oneRound(t, *clients, *factor, *dur, *conns)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if len(results) > 1 {
		summarize(results)
	}
	return nil
}

// roundResult is what one capacity + overload pair measured.
type roundResult struct {
	ratio   float64 // admitted p99 / unloaded p99
	offered float64 // offered rate / capacity
	bad     int     // 500s, client errors and timeouts, 503s without Retry-After
	dropped int     // requests the generator could not send on time
	refused int
	// The 201s' latencies, for the ratio of the pooled p99s.
	unloaded, admitted []time.Duration
}

// oneRound measures capacity closed loop, then offers factor × that open
// loop, and prints both phases.
func oneRound(t *target, clients int, factor float64, dur time.Duration, conns int) (roundResult, error) {
	// Phase 1: capacity, closed loop.
	capStats, elapsed := capacity(t, clients, dur)
	ok := capStats.latencies[201]
	if len(ok) == 0 {
		capStats.report("  ")
		return roundResult{}, fmt.Errorf("no 201 in the capacity phase (statuses %v); check -key", capStats.status)
	}
	capRate := float64(len(ok)) / elapsed.Seconds()
	unloaded := pct(ok, 99)
	fmt.Printf("capacity %.0f req/s with %d clients, p99 %v\n", capRate, clients, round(unloaded))
	if n := capStats.errors(); n > 0 || len(capStats.status) > 1 {
		fmt.Printf("  capacity phase also saw: statuses %v, client errors/timeouts %d\n", capStats.status, n)
		capStats.report("  ")
	}

	// Phase 2: overload, open loop.
	o := overload(t, factor*capRate, dur, conns)
	s := o.stats
	offered := float64(s.sent) / dur.Seconds()
	admitted := s.latencies[201]
	refused := s.latencies[503]
	p99 := pct(admitted, 99)
	fmt.Printf("offered %.0f req/s (%.2f× capacity) for %v: admitted %d (%.0f req/s) p99 %v = %.2f× unloaded p99\n",
		offered, offered/capRate, dur, len(admitted), float64(len(admitted))/dur.Seconds(), round(p99), float64(p99)/float64(unloaded))
	other := maps.Clone(s.status)
	delete(other, 201)
	delete(other, 503)
	delete(other, 500)
	fmt.Printf("refused 503: %d (without Retry-After: %d); 500s: %d; client errors/timeouts: %d; other: %v\n",
		len(refused), s.noRetryAfter, s.status[500], s.errors(), other)
	fmt.Printf("latency 201 p50 %v p99 %v; 503 p50 %v p99 %v\n",
		round(pct(admitted, 50)), round(p99), round(pct(refused, 50)), round(pct(refused, 99)))
	fmt.Printf("generator could not send: %d (target %.0f req/s; %d connections; dispatched late by p99 %v, max %v)\n",
		o.dropped, factor*capRate, o.workers, round(pct(o.late, 99)), round(pct(o.late, 100)))
	s.report("  ")
	return roundResult{
		ratio:    float64(p99) / float64(unloaded),
		offered:  offered / capRate,
		bad:      s.status[500] + s.errors() + s.noRetryAfter,
		dropped:  o.dropped,
		refused:  len(refused),
		unloaded: ok,
		admitted: admitted,
	}, nil
}

// summarize prints the rounds' admitted-p99 ratios: median, range, and
// how many stayed within 2×, with the totals that must be 0; then the p99
// of every admitted request of the run against the p99 of every request
// of the capacity phases (phases alternate, so the host's drift weighs on
// both pools alike).
func summarize(rs []roundResult) {
	ratios := make([]float64, len(rs))
	within, bad, dropped, refused := 0, 0, 0, 0
	minOffered := math.Inf(1)
	var allUnloaded, allAdmitted []time.Duration
	for i, r := range rs {
		allUnloaded = append(allUnloaded, r.unloaded...)
		allAdmitted = append(allAdmitted, r.admitted...)
		ratios[i] = r.ratio
		if r.ratio <= 2 {
			within++
		}
		bad += r.bad
		dropped += r.dropped
		refused += r.refused
		minOffered = min(minOffered, r.offered)
	}
	slices.Sort(ratios)
	fmt.Printf("== %d rounds: admitted p99 / unloaded p99 median %.2f× (min %.2f×, max %.2f×), within 2× in %d; offered ≥ %.2f× capacity; "+
		"admitted %d, refused 503 %d; 500s + client errors/timeouts + 503s without Retry-After: %d; not sent: %d\n",
		len(rs), ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1], within, minOffered, len(allAdmitted), refused, bad, dropped)
	u, a := pct(allUnloaded, 99), pct(allAdmitted, 99)
	fmt.Printf("== pooled over the rounds: admitted p99 %v / unloaded p99 %v = %.2f×\n", round(a), round(u), float64(a)/float64(u))
}

// target is the server and the fixed part of every request.
type target struct {
	addr    string // host:port to dial
	head    string // request line and headers up to "Content-Length: "
	timeout time.Duration
}

// phone numbers the leads, so that every request has a unique phone (for
// the first 10 million requests).
var phone atomic.Int64

// conn is one kept-alive connection with its reused buffers.
type conn struct {
	t    *target
	c    net.Conn // nil until dialled, and after an error or Connection: close
	r    *bufio.Reader
	req  []byte // the request being sent
	body []byte // its body
	num  []byte // scratch for the phone number's digits
}

// do sends one request on c, dialling first if needed, and returns the
// status and whether a Retry-After header came with it, or an error.
func (c *conn) do() (status int, retryAfter bool, err error) {
	// Body: {"name":"Load","phone":"+1415NNNNNNN"}, NNNNNNN unique.
	c.num = strconv.AppendInt(c.num[:0], phone.Add(1)%1e7, 10)
	c.body = append(c.body[:0], `{"name":"Load","phone":"+1415`...)
	for range 7 - len(c.num) {
		c.body = append(c.body, '0')
	}
	c.body = append(append(c.body, c.num...), `"}`...)
	c.req = append(c.req[:0], c.t.head...)
	c.req = strconv.AppendInt(c.req, int64(len(c.body)), 10)
	c.req = append(append(c.req, "\r\n\r\n"...), c.body...)

	if c.c == nil {
		nc, err := net.DialTimeout("tcp", c.t.addr, c.t.timeout)
		if err != nil {
			return 0, false, err
		}
		c.c = nc
		if c.r == nil {
			c.r = bufio.NewReaderSize(nc, 4096)
		} else {
			c.r.Reset(nc)
		}
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.c.SetDeadline(time.Now().Add(c.t.timeout)); err != nil {
		return 0, false, err
	}
	if _, err := c.c.Write(c.req); err != nil {
		return 0, false, err
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return 0, false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, false, err
	}
	if resp.Close {
		c.close()
	}
	return resp.StatusCode, resp.Header.Get("Retry-After") != "", nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// stats is what one worker saw; workers keep their own and they are merged
// at the end, so the hot path shares nothing but the phone counter.
type stats struct {
	sent         int
	status       map[int]int
	latencies    map[int][]time.Duration // per status, for 201 and 503
	noRetryAfter int                     // 503s without Retry-After
	errs         map[string]int          // client errors by kind
}

func newStats() *stats {
	return &stats{status: map[int]int{}, latencies: map[int][]time.Duration{}, errs: map[string]int{}}
}

func (s *stats) record(status int, retryAfter bool, err error, took time.Duration) {
	s.sent++
	if err != nil {
		s.errs[errKind(err)]++
		return
	}
	s.status[status]++
	if status == 201 || status == 503 {
		s.latencies[status] = append(s.latencies[status], took)
	}
	if status == 503 && !retryAfter {
		s.noRetryAfter++
	}
}

func (s *stats) merge(o *stats) {
	s.sent += o.sent
	s.noRetryAfter += o.noRetryAfter
	for k, v := range o.status {
		s.status[k] += v
	}
	for k, v := range o.latencies {
		s.latencies[k] = append(s.latencies[k], v...)
	}
	for k, v := range o.errs {
		s.errs[k] += v
	}
}

func (s *stats) errors() (n int) {
	for _, v := range s.errs {
		n += v
	}
	return n
}

// report prints up to 10 distinct client errors, the most frequent first.
func (s *stats) report(indent string) {
	kinds := slices.SortedFunc(maps.Keys(s.errs), func(a, b string) int { return s.errs[b] - s.errs[a] })
	for _, k := range kinds[:min(len(kinds), 10)] {
		fmt.Printf("%s%d× %s\n", indent, s.errs[k], k)
	}
	if len(kinds) > 10 {
		fmt.Printf("%s… and %d more kinds\n", indent, len(kinds)-10)
	}
}

// errKind drops the addresses (and so the local port) from network errors,
// so that the same failure on different connections counts as one kind.
func errKind(err error) string {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		return oe.Op + ": " + oe.Err.Error()
	}
	return err.Error()
}

// capacity runs n closed-loop clients for d and returns what they saw and
// how long they took (until the last one's last answer).
func capacity(t *target, n int, d time.Duration) (*stats, time.Duration) {
	all := make([]*stats, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range all {
		s := newStats()
		all[i] = s
		wg.Go(func() {
			c := &conn{t: t}
			defer c.close()
			for time.Since(start) < d {
				t0 := time.Now()
				status, ra, err := c.do()
				s.record(status, ra, err, time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, s := range all[1:] {
		all[0].merge(s)
	}
	return all[0], elapsed
}

type overloadResult struct {
	stats   *stats
	dropped int             // due but not handed over: every connection busy, queue full
	workers int             // connections used
	late    []time.Duration // how late the dispatcher handed each request over
}

// overload offers rate requests per second for d, open loop, from at most
// conns connections, and waits for the answers.
func overload(t *target, rate float64, d time.Duration, conns int) overloadResult {
	due := make(chan time.Time, conns) // scheduled send times
	var idle atomic.Int64              // workers waiting on due
	var wg sync.WaitGroup
	var all []*stats
	spawn := func() {
		s := newStats()
		all = append(all, s)
		wg.Go(func() {
			c := &conn{t: t}
			defer c.close()
			for {
				idle.Add(1)
				at, ok := <-due
				idle.Add(-1)
				if !ok {
					return
				}
				status, ra, err := c.do()
				s.record(status, ra, err, time.Since(at))
			}
		})
	}

	total := int(rate * d.Seconds())
	dropped := 0
	late := make([]time.Duration, 0, total)
	start := time.Now()
	for i := 0; i < total; {
		// Hand over every request whose time has come.
		now := time.Since(start)
		for ; i < total; i++ {
			at := time.Duration(float64(i) / rate * float64(time.Second))
			if at > now {
				time.Sleep(min(at-now, time.Millisecond))
				break
			}
			late = append(late, now-at)
			if int64(len(due)) >= idle.Load() && len(all) < conns {
				spawn() // no idle worker for this one
			}
			select {
			case due <- start.Add(at):
			default:
				dropped++
			}
		}
	}
	close(due)
	wg.Wait() // each worker has at most its queued requests left, each bounded by the timeout

	if len(all) == 0 {
		all = append(all, newStats())
	}
	for _, s := range all[1:] {
		all[0].merge(s)
	}
	return overloadResult{stats: all[0], dropped: dropped, workers: len(all), late: late}
}

// pct returns the p-th percentile of ds (which it sorts), 0 if empty.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)*p/100, len(ds)-1)]
}

func round(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
