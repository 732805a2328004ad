package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// errHeaderTimeout is the cause of a request whose upstream sent no
// response headers within Options.Timeout.
var errHeaderTimeout = errors.New("no response headers from the upstream in time")

// headerTimeout is a RoundTripper that bounds the wait for response
// headers, from the moment the request was written (as
// http.Transport.ResponseHeaderTimeout does, but for any RoundTripper, and
// with an error of its own so that it reads as 504, not 502).
type headerTimeout struct {
	next http.RoundTripper
	d    time.Duration
}

func (t *headerTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	tm := &headerTimer{}
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			tm.start(t.d, func() { cancel(errHeaderTimeout) })
		},
	})
	res, err := t.next.RoundTrip(req.WithContext(ctx))
	if tm.stop() {
		if res != nil {
			res.Body.Close()
		}
		cancel(nil)
		return nil, fmt.Errorf("%w (%v)", errHeaderTimeout, t.d)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	// The body is read under ctx: it is released when the body is closed.
	if rwc, ok := res.Body.(io.ReadWriteCloser); ok {
		res.Body = &cancelRWC{rwc, cancel} // 101 Switching Protocols
	} else {
		res.Body = &cancelBody{res.Body, cancel}
	}
	return res, nil
}

// headerTimer runs f once d after start, unless stop came first.
type headerTimer struct {
	mu    sync.Mutex
	t     *time.Timer
	done  bool // stop was called
	fired bool
}

// start arms the timer, once; after stop it does nothing.
func (h *headerTimer) start(d time.Duration, f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done || h.t != nil {
		return
	}
	h.t = time.AfterFunc(d, func() {
		h.mu.Lock()
		if h.done {
			h.mu.Unlock()
			return
		}
		h.fired = true
		h.mu.Unlock()
		f()
	})
}

// stop disarms the timer and reports whether it fired.
func (h *headerTimer) stop() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	if h.t != nil {
		h.t.Stop()
	}
	return h.fired
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

type cancelRWC struct {
	io.ReadWriteCloser
	cancel context.CancelCauseFunc
}

func (b *cancelRWC) Close() error {
	err := b.ReadWriteCloser.Close()
	b.cancel(nil)
	return err
}
