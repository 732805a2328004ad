// Command overload measures how tollgate serve holds up when offered 4×
// what it can hold (run by bench/overload.sh, with the server on its own
// core). It first finds the capacity of POST /v1/leads with -clients
// closed-loop clients (the unloaded p99), then offers -factor × that rate
// from paced workers on kept-alive connections for -duration, and reports
// the admitted requests' p99, the refusals (503 with Retry-After), client
// timeouts and 500s. It sends only to the -base address, which must be on
// loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
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

type result struct {
	status int
	retry  string
	took   time.Duration
}

var phone atomic.Int64

func send(c *http.Client, base, key string) result {
	body := fmt.Sprintf(`{"name":"Load","phone":"+1415%07d"}`, phone.Add(1))
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/v1/leads", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return result{status: -1, took: time.Since(start)}
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return result{status: resp.StatusCode, retry: resp.Header.Get("Retry-After"), took: time.Since(start)}
}

func p99(rs []result, status int) time.Duration {
	var d []time.Duration
	for _, r := range rs {
		if r.status == status {
			d = append(d, r.took)
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)*99/100]
}

func run(args []string) error {
	fs := flag.NewFlagSet("overload", flag.ContinueOnError)
	base := fs.String("base", "http://127.0.0.1:18100", "server (loopback only)")
	key := fs.String("key", "", "API key with leads:write")
	clients := fs.Int("clients", 4, "closed-loop clients for the capacity run (= the server's --max-concurrency)")
	factor := fs.Float64("factor", 4, "offered load as a multiple of capacity")
	dur := fs.Duration("duration", 5*time.Second, "length of each phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost" && u.Hostname() != "::1") {
		return fmt.Errorf("-base must be a loopback address")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

	// Capacity: closed loop.
	var mu sync.Mutex
	var base1 []result
	var wg sync.WaitGroup
	start := time.Now()
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < *dur {
				r := send(client, *base, *key)
				mu.Lock()
				base1 = append(base1, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	capacity := float64(len(base1)) / time.Since(start).Seconds()

	// Overload: paced workers.
	rate := *factor * capacity
	const workers = 128
	every := time.Duration(float64(workers) / rate * float64(time.Second))
	var over []result
	start = time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(every * time.Duration(w) / workers)
			for ; next.Sub(start) < *dur; next = next.Add(every) {
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				r := send(client, *base, *key)
				mu.Lock()
				over = append(over, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	offered := float64(len(over)) / time.Since(start).Seconds()
	counts := map[int]int{}
	badRetry := 0
	for _, r := range over {
		counts[r.status]++
		if r.status == 503 && r.retry == "" {
			badRetry++
		}
	}
	bp, op := p99(base1, 201), p99(over, 201)
	fmt.Printf("capacity %.0f req/s with %d clients, p99 %v\n", capacity, *clients, bp.Round(time.Microsecond))
	fmt.Printf("offered %.0f req/s (%.1f× capacity) for %v: admitted %d (%.0f req/s) p99 %v = %.2f× unloaded p99\n",
		offered, offered/capacity, *dur, counts[201], float64(counts[201])/dur.Seconds(), op.Round(time.Microsecond), float64(op)/float64(bp))
	fmt.Printf("refused 503: %d (without Retry-After: %d); 500s: %d; client errors/timeouts: %d; other: %v\n",
		counts[503], badRetry, counts[500], counts[-1], counts)
	return nil
}
