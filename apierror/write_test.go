package apierror_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
)

// TestWriteDropsLocation: a handler that set Location for the resource it
// meant to create, then failed, answers an error that points nowhere; an
// error that names a Location itself keeps it.
func TestWriteDropsLocation(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"set before the failure", apierror.New(apierror.InternalError, ""), ""},
		{"the error's own", apierror.New(apierror.Conflict, "").WithHeader("Location", "/v1/things/2"), "/v1/things/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("Location", "/v1/things/1")
			apierror.Write(w, httptest.NewRequest(http.MethodPost, "/v1/things", nil), tt.err)
			if got := w.Header().Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWriteEndedRequest: an error written for a request whose context has
// ended closes the connection after it, and a cancellation that came with
// a passed deadline is answered as the timeout it is.
func TestWriteEndedRequest(t *testing.T) {
	past := time.Now().Add(-time.Second)
	cancelled := func() context.Context {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx
	}
	withDeadline := func(parent context.Context, d time.Time) context.Context {
		ctx, cancel := context.WithDeadline(parent, d)
		t.Cleanup(cancel)
		return ctx
	}
	tests := []struct {
		name       string
		ctx        context.Context
		err        error
		wantReason string
		wantClose  bool
	}{
		{"live request", context.Background(), context.Canceled, "cancelled", false},
		{"client gone", cancelled(), context.Canceled, "cancelled", true},
		{"deadline passed", withDeadline(context.Background(), past), context.DeadlineExceeded, "timeout", true},
		// net/http cancelled it as the read deadline fired, before the
		// context's own timer.
		{"cancelled at its deadline", withDeadline(cancelled(), past), context.Canceled, "timeout", true},
		{"cancelled before its deadline", withDeadline(cancelled(), time.Now().Add(time.Hour)), context.Canceled, "cancelled", true},
		{"another error of an ended request", cancelled(), apierror.New(apierror.NotFound, ""), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			apierror.Write(w, httptest.NewRequest("GET", "/", nil).WithContext(tt.ctx), tt.err)
			var body struct {
				Error struct {
					Details map[string]any `json:"details"`
				} `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			reason, _ := body.Error.Details["reason"].(string)
			if reason != tt.wantReason || (w.Header().Get("Connection") == "close") != tt.wantClose {
				t.Errorf("reason %q, Connection %q; want %q, close %v", reason, w.Header().Get("Connection"), tt.wantReason, tt.wantClose)
			}
		})
	}
}

// TestWriteDropsContentEncoding: a handler that set Content-Encoding for
// the compressed body it meant to send, then failed, answers an error
// body that is not encoded; left in place, the header makes the client
// decode the envelope as gzip (or anything else) and fail.
func TestWriteDropsContentEncoding(t *testing.T) {
	for _, enc := range []string{"gzip", "br", "deflate"} {
		t.Run(enc, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", enc)
				w.Header().Set("X-Request-Id", "r1")
				apierror.Write(w, r, apierror.New(apierror.InternalError, ""))
			}))
			defer srv.Close()
			res, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if got := res.Header.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding = %q on an unencoded error body", got)
			}
			if e := apierror.Decode(res); e.Foreign || e.Code != apierror.InternalError || e.RequestID() != "r1" {
				t.Errorf("body not the envelope: code %s, foreign %v, request_id %q", e.Code, e.Foreign, e.RequestID())
			}
		})
	}
}
