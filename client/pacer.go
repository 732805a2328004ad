package client

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// pacer keeps, per key (a host and a credential, see keyOf), the rate-limit
// state of the newest response and the number of requests in flight, so
// that a key whose limit is spent waits for X-RateLimit-Reset instead of
// earning a 429.
//
// The rule for a key: the first request goes alone, so that the others
// learn its state. Then send if the server sends no X-RateLimit-* headers,
// or if the last response's Remaining exceeds the requests already in
// flight. Otherwise wait until the reset (or until a response changes the
// state). Once the reset has passed the state is out of date: one probe
// request goes alone, and its response tells the others how much is left.
// Nobody waits more than responseWait for a first or probe response, nor
// past the context's deadline (the request is sent instead), so a
// slow request cannot hold up the key.
//
// A pacer is safe for concurrent use.
type pacer struct {
	mu      sync.Mutex
	keys    map[paceKey]*paceState
	pruneAt int // prune when keys grows past this (0: maxPaceKeys)
}

// maxPaceKeys is the size of the pacer's map past which release drops the
// states that say nothing any more: no request in flight and the reset
// passed. A key whose state was dropped starts again as a new key (its
// first request goes alone). A client that talks to many hosts, or with
// many keys, so keeps a bounded map.
const maxPaceKeys = 1024

// paceKey is what a rate limit applies to: a credential (the Authorization
// or X-Api-Key header, "" for none) on one host. Two hosts never share a
// limit, even without a credential.
type paceKey struct {
	origin     string // scheme://host[:port], lower case
	credential string
}

type paceState struct {
	seen      bool // a request on the key has finished
	known     bool // the state below comes from X-RateLimit-* headers
	remaining int
	reset     time.Time
	inflight  int
	version   uint64        // bumped each time a response sets the state
	changed   chan struct{} // closed and replaced on every change
}

// responseWait bounds the wait for the response to a key's first request
// or to a probe.
const responseWait = time.Second

func newPacer() *pacer { return &pacer{keys: map[paceKey]*paceState{}} }

func (p *pacer) state(key paceKey) *paceState {
	st := p.keys[key]
	if st == nil {
		st = &paceState{changed: make(chan struct{})}
		p.keys[key] = st
	}
	return st
}

// acquire waits until a request on key may be sent and counts it in flight;
// it returns the request's ticket for release. A wait longer than MaxWait or
// past the context's deadline is not taken: the request is sent and the
// server decides. With skipWait set (a retry after a wait the server named),
// the request does not wait at all.
func (p *pacer) acquire(ctx context.Context, key paceKey, e *engine, skipWait bool) (uint64, error) {
	for {
		p.mu.Lock()
		st := p.state(key)
		t := e.now()
		var d time.Duration
		until := "rate-limit reset"
		goAhead := func() (uint64, error) {
			st.inflight++
			ticket := st.version
			p.mu.Unlock()
			return ticket, nil
		}
		switch {
		case !st.seen && !skipWait:
			if st.inflight == 0 { // the first request on the key
				return goAhead()
			}
			d, until = min(e.policy.MaxWait, responseWait), "first response" // woken when it arrives
		case skipWait || !st.known: // the server sends no X-RateLimit-* headers
			return goAhead()
		case !t.Before(st.reset): // the state is out of date
			if st.inflight == 0 { // the probe after a reset
				return goAhead()
			}
			d, until = min(e.policy.MaxWait, responseWait), "response" // woken when one arrives
		case st.remaining-st.inflight > 0:
			return goAhead()
		default:
			d = st.reset.Sub(t)
			if d > e.policy.MaxWait {
				return goAhead()
			}
		}
		if pastDeadline(ctx, t, d) { // no wait past the deadline: the request goes instead
			return goAhead()
		}
		changed := st.changed
		rem, infl := st.remaining, st.inflight
		p.mu.Unlock()

		e.log.DebugContext(ctx, "tollgate: pacing", "until", until, "max_wait", d, "remaining", rem, "in_flight", infl)
		wctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-changed:
				cancel()
			case <-wctx.Done():
			}
		}()
		_ = e.sleep(wctx, d) // woken by a state change, or the wait is over
		cancel()
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if until != "rate-limit reset" && !closed(changed) { // no response in time: go
			p.mu.Lock()
			return goAhead()
		}
	}
}

// release records the outcome of the request with ticket on key.
//
// Responses to concurrent requests arrive in any order, and not in the
// order the server decided them, so the X-RateLimit-* headers of resp
// replace the key's state only when they are news: the request was sent
// after the current state was learnt (its ticket is the current version),
// they report fewer remaining requests, or the state is past its reset and
// they are not older than it.
// A 429 without those headers but with a wait (Retry-After,
// details.retry_after) holds the key until then.
func (p *pacer) release(key paceKey, ticket uint64, resp *http.Response, apiErr *apierror.Error, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.state(key)
	st.seen = true
	if st.inflight > 0 {
		st.inflight--
	}
	if resp != nil {
		if rl, ok := apierror.ParseRateLimit(resp.Header); ok {
			fresh := !st.known || ticket == st.version || rl.Remaining < st.remaining ||
				(!now.Before(st.reset) && !rl.Reset.Before(st.reset))
			if fresh {
				st.known = true
				st.remaining = rl.Remaining
				st.reset = rl.Reset
				st.version++
			}
		} else if resp.StatusCode == http.StatusTooManyRequests {
			if d, _, ok := ServerWait(resp, apiErr, now); ok {
				st.known = true
				st.remaining = 0
				if r := now.Add(d); r.After(st.reset) {
					st.reset = r
				}
				st.version++
			}
		}
	}
	close(st.changed)
	st.changed = make(chan struct{})
	p.prune(now)
}

// prune drops, once the map has grown past pruneAt, the states that say
// nothing any more (see maxPaceKeys), waking anyone who waits on them, and
// sets the next threshold to twice what is left: amortised O(1) per
// release. p.mu is held.
func (p *pacer) prune(now time.Time) {
	if len(p.keys) <= max(p.pruneAt, maxPaceKeys) {
		return
	}
	for k, st := range p.keys {
		if st.inflight == 0 && !now.Before(st.reset) {
			close(st.changed)
			delete(p.keys, k)
		}
	}
	p.pruneAt = 2 * len(p.keys)
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pastDeadline reports whether waiting d from now would pass ctx's deadline.
func pastDeadline(ctx context.Context, now time.Time, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return ok && !now.Add(d).Before(dl)
}

// keyOf returns the pacing key of a request: the scheme and host it is sent
// to and the credential it carries.
func keyOf(req *http.Request) paceKey {
	k := paceKey{credential: req.Header.Get("Authorization")}
	if k.credential == "" {
		k.credential = req.Header.Get("X-Api-Key")
	}
	if u := req.URL; u != nil {
		k.origin = strings.ToLower(u.Scheme + "://" + u.Host)
	}
	return k
}
