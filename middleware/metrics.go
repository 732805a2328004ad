package middleware

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts requests by route, status and code, and observes their
// latency, on reg:
//
//	tollgate_http_requests_total{route,status,code}
//	tollgate_http_request_duration_seconds{route}
//
// Unmatched paths are counted under route "unmatched"; a response aborted
// by a panic (http.ErrAbortHandler) under the status sent before it, "0"
// when nothing was. Several Metrics may share reg (two servers on one
// registry): they count into the same series. now is the clock (time.Now
// if nil).
func Metrics(reg prometheus.Registerer, now func() time.Time) Middleware {
	now, since := clocks(now)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_http_requests_total",
		Help: "HTTP requests by route pattern, status and error code.",
	}, []string{"route", "status", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tollgate_http_request_duration_seconds",
		Help:    "HTTP request latency by route pattern.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	requests = register(reg, requests)
	latency = register(reg, latency)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, w, r := begin(w, r, time.Time{})
			if st.start.IsZero() {
				st.start = now()
			}
			defer func() {
				// A panic that gets here aborts the response: counted with
				// the status sent before it (0 for none), then passed on.
				v := recover()
				if v != nil {
					defer panic(v)
				}
				route := st.route
				if route == "" {
					route = "unmatched"
				}
				requests.WithLabelValues(route, statusText(st.rec.outcome(r, v != nil)), string(st.rec.code())).Inc()
				latency.WithLabelValues(route).Observe(since(st.start).Seconds())
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// register registers c on reg, or returns the collector of the same
// description reg already holds; it panics on any other error, as
// MustRegister does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(C); ok {
				return prev
			}
		}
		panic(err)
	}
	return c
}

var statusTexts = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}
