package client

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Transport is an http.RoundTripper that retries the way the tollgate
// contract says, for any *http.Client:
//
//	hc := &http.Client{Transport: &client.Transport{}}
//
// It adds an Idempotency-Key to a POST or PATCH that has none (a key the
// caller set is kept, and every attempt carries the same one), rewinds
// request bodies with req.GetBody (set by http.NewRequest for in-memory
// bodies; a body without GetBody is sent once), drains and closes a
// response before retrying, and keeps a retry budget across all the
// requests it carries and the pacing state per host (scheme and host) and
// credential (the Authorization or X-Api-Key header, or none): a rate
// limit spent on one host never delays a request to another.
//
// A non-2xx response that is not retried, or is the last attempt, is
// returned as a response, not an error: decode it with apierror.Decode.
//
// Set the fields before the first request and do not change them after; a
// Transport must not be copied after first use. RoundTrip is safe for
// concurrent use.
type Transport struct {
	// Base sends each attempt. Nil means http.DefaultTransport.
	Base http.RoundTripper
	// Policy is the retry policy; the zero value is the default policy.
	Policy Policy
	// Logger receives each attempt, wait and decision at debug level. Nil
	// means no logging.
	Logger *slog.Logger
	// Now and Sleep replace the clock, for tests. Nil means time.Now and
	// Sleep. Now must agree with the clock of context deadlines.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	once sync.Once
	eng  *engine
}

// RoundTrip sends req, retrying as the Policy allows. It does not modify
// req; it closes req.Body.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.once.Do(func() { t.eng = newEngine(t.Policy, t.Now, t.Sleep, t.Logger) })
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, _, err := t.eng.do(req, base.RoundTrip)
	return resp, err
}
