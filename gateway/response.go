package gateway

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// upstreamError carries the answer that replaces an upstream error
// response, from ModifyResponse to the ErrorHandler, which writes it.
type upstreamError struct{ e *apierror.Error }

func (u *upstreamError) Error() string { return u.e.Error() }

// modifyResponse is ReverseProxy's ModifyResponse (see the package
// documentation): it settles the headers both sides set, lets 1xx–3xx
// through, and passes an error through only when it is already the
// contract's.
func (g *Gateway) modifyResponse(res *http.Response) error {
	ex := exchangeFrom(res.Request.Context())
	for k := range res.Header {
		if strings.EqualFold(k, apierror.HeaderRequestID) {
			delete(res.Header, k) // the gateway's id is on the response
		}
	}
	// What a 429 or 503 says of the upstream's limit, read before the
	// merge below, which may drop the upstream's rate-limit headers.
	var lim upstreamLimit // only a 429 or 503 reads it
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		lim = readUpstreamLimit(res.Header)
	}
	if ex != nil {
		mergeRateHeaders(ex.w.Header(), res.Header)
	}
	if res.StatusCode == http.StatusSwitchingProtocols && !switchAsked(ex, res.Header) {
		// ReverseProxy refuses such a switch too, but leaves the
		// upstream's connection open; an error here has it closed.
		return fmt.Errorf("gateway: upstream switched to %q, which was not asked for", res.Header.Get("Upgrade"))
	}
	if res.StatusCode < 400 {
		if loc := res.Header.Get("Location"); loc != "" {
			if to, ok := g.relocate(loc); ok {
				res.Header.Set("Location", to)
			}
		}
		if ex != nil && res.StatusCode != http.StatusSwitchingProtocols {
			res.Body = &bodyErrRecorder{res.Body, ex}
		}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, MaxErrorBody+1))
	if err != nil {
		if ctxErr := res.Request.Context().Err(); ctxErr != nil {
			return fmt.Errorf("gateway: read upstream error body: %w: %w", ctxErr, err)
		}
		data = nil // a broken body is no envelope: replaced below
	}
	if err == nil && len(data) <= MaxErrorBody && isContract(res, data) {
		res.Body.Close() // releases the connection; the bytes are in data
		res.Body = io.NopCloser(bytes.NewReader(data))
		return nil
	}
	return &upstreamError{replacement(res, lim)}
}

// isContract reports whether body, the whole error body of res, is the
// contract's envelope or problem+json: a body apierror.Decode reads as its
// own, with a code of the catalogue whose status is res's, and a message.
func isContract(res *http.Response, body []byte) bool {
	switch enc := strings.TrimSpace(strings.ToLower(res.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return false
		}
		body, err = io.ReadAll(io.LimitReader(zr, MaxErrorBody+1))
		if err != nil || len(body) > MaxErrorBody {
			return false
		}
	default:
		return false
	}
	e := apierror.Decode(&http.Response{StatusCode: res.StatusCode, Header: res.Header, Body: io.NopCloser(bytes.NewReader(body))})
	return !e.Foreign && e.Code.Known() && e.Code.Status() == res.StatusCode && e.Message != ""
}

// upstreamLimit is what an upstream 429 or 503 said of its rate limit.
type upstreamLimit struct {
	wait   time.Duration // without Retry-After: the time to X-RateLimit-Reset, else 1 s
	limit  int           // X-RateLimit-Limit; 0 when not said
	window time.Duration // the w= of a single RateLimit-Policy; 0 when not said
}

func readUpstreamLimit(h http.Header) upstreamLimit {
	lim := upstreamLimit{wait: time.Second}
	if d, ok := apierror.ParseRateLimitReset(h, time.Now()); ok {
		lim.wait = d
	}
	if rl, ok := apierror.ParseRateLimit(h); ok && rl.Limit > 0 {
		lim.limit = rl.Limit
	}
	if w, ok := policyWindow(h.Values("Ratelimit-Policy")); ok {
		lim.window = w
	}
	return lim
}

// replacement is the envelope that replaces res, an upstream error whose
// body is not the contract's; lim is what a 429 or 503 said of its limit
// (the headers of res may no longer hold it: see mergeRateHeaders).
func replacement(res *http.Response, lim upstreamLimit) *apierror.Error {
	status := res.StatusCode
	code := apierror.CodeForStatus(status)
	switch {
	case status >= 500 && code == apierror.InternalError && status != http.StatusInternalServerError,
		status >= 600:
		code = apierror.BadGateway // a failure outside the catalogue
	}
	e := apierror.Wrap(fmt.Errorf("gateway: upstream answered %d", status), code, "").
		With("upstream_status", status)
	for k, vs := range res.Header {
		if isRateHeader(k) {
			if e.Header == nil {
				e.Header = http.Header{}
			}
			e.Header[k] = vs
		}
	}
	if d, ok := apierror.ParseRetryAfter(res.Header, time.Now()); ok {
		e.WithRetryAfter(d)
	} else if code == apierror.RateLimited || code == apierror.ServiceUnavailable {
		e.WithRetryAfter(lim.wait) // the contract: 429 and 503 carry one
	}
	switch code {
	case apierror.ServiceUnavailable:
		e.With("reason", "upstream_unavailable")
	case apierror.RateLimited:
		// The contract's limit and window, as far as the upstream told
		// them: X-RateLimit-Limit, and the w= of a single RateLimit-Policy.
		e.With("policy", "upstream")
		if lim.limit > 0 {
			e.With("limit", lim.limit)
		}
		if lim.window > 0 {
			e.With("window", ratelimit.FormatWindow(lim.window))
		}
	case apierror.MethodNotAllowed:
		if allow := res.Header.Values("Allow"); len(allow) > 0 {
			var allowed []string
			for _, v := range allow {
				for m := range strings.SplitSeq(v, ",") {
					if m = strings.TrimSpace(m); m != "" {
						allowed = append(allowed, m)
					}
				}
			}
			e.WithHeader("Allow", strings.Join(allowed, ", ")).With("allowed", allowed)
		}
	}
	return e
}

// policyWindow returns the window (w=, in seconds) of an IETF
// RateLimit-Policy header that names exactly one policy.
func policyWindow(vals []string) (time.Duration, bool) {
	if len(vals) != 1 || strings.Contains(vals[0], ",") {
		return 0, false
	}
	for p := range strings.SplitSeq(vals[0], ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "w="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > 1<<31 {
				return 0, false
			}
			return time.Duration(n) * time.Second, true
		}
	}
	return 0, false
}

// isRateHeader reports whether the header named k (canonical) is a
// rate-limit header: X-RateLimit-*, RateLimit or RateLimit-*.
func isRateHeader(k string) bool {
	return hasPrefixFold(k, "X-Ratelimit-") || strings.EqualFold(k, "Ratelimit") || hasPrefixFold(k, "Ratelimit-")
}

// mergeRateHeaders leaves one set of rate-limit headers between gw, the
// headers the gateway set on its response, and up, the upstream's: the
// most restrictive policy's (see the package documentation). The set not
// kept is deleted from its map.
func mergeRateHeaders(gw, up http.Header) {
	upHas, gwHas := hasRateHeader(up), hasRateHeader(gw)
	if !upHas || !gwHas {
		return
	}
	upRL, upOK := apierror.ParseRateLimit(up)
	gwRL, gwOK := apierror.ParseRateLimit(gw)
	drop := up
	if upOK && (!gwOK || upRL.Remaining < gwRL.Remaining ||
		upRL.Remaining == gwRL.Remaining && upRL.Reset.After(gwRL.Reset)) {
		drop = gw
	}
	for k := range drop {
		if isRateHeader(k) {
			delete(drop, k)
		}
	}
}

func hasRateHeader(h http.Header) bool {
	for k := range h {
		if isRateHeader(k) {
			return true
		}
	}
	return false
}

// relocate maps a Location the upstream sent to the address the client
// must use, as nginx's "proxy_redirect default" does: a URL on the
// upstream (its scheme and host, the default port spelled or not) or a
// path, under the upstream's base path, becomes the path the client asks
// the gateway for, without scheme and host (the gateway's own address, as
// the client knows it, is not known here). The query and fragment stay.
// Any other Location (another host, a path outside the base) is kept.
func (g *Gateway) relocate(loc string) (string, bool) {
	u, err := url.Parse(loc)
	if err != nil || u.Opaque != "" || u.User != nil {
		return "", false
	}
	if u.Scheme != "" || u.Host != "" {
		// "//host/path" takes the scheme of the request: the upstream's.
		if u.Scheme != "" && !strings.EqualFold(u.Scheme, g.upstream.Scheme) || !sameHost(u, g.upstream) {
			return "", false
		}
	} else if !strings.HasPrefix(u.Path, "/") {
		return "", false // relative to the request's path: right as it is
	}
	orig := u.EscapedPath()
	// "." and ".." segments resolved, as the client will: "/base/../x" is
	// not under the base.
	u = new(url.URL).ResolveReference(u)
	base := strings.TrimSuffix(g.upstream.EscapedPath(), "/")
	p := u.EscapedPath()
	switch {
	case base == "":
	case p == base:
		p = "/"
	case strings.HasPrefix(p, base+"/"):
		p = p[len(base):]
	default:
		return "", false // outside what the gateway reaches
	}
	if p == "" {
		p = "/"
	}
	if strings.HasPrefix(p, "//") {
		// As a Location, "//evil.example/x" is another host: kept as it
		// is, pointing at the upstream, rather than made an open redirect.
		return "", false
	}
	if u.Scheme == "" && u.Host == "" && p == orig {
		return "", false // a path the client can already use
	}
	if u.ForceQuery || u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	if u.Fragment != "" {
		p += "#" + u.EscapedFragment()
	}
	return p, true
}

// sameHost reports whether a and the upstream b name the same host and
// port, a port left out meaning the scheme's default (b's when a has
// none).
func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		scheme := u.Scheme
		if scheme == "" {
			scheme = b.Scheme
		}
		if strings.EqualFold(scheme, "https") {
			return "443"
		}
		return "80"
	}
	return strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}
