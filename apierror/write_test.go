package apierror_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
