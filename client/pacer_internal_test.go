package client

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestPacerPrunes: a client that talks to many hosts keeps a bounded map
// of pacing states, and never drops one that still holds a spent limit.
func TestPacerPrunes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := newPacer()
	limited := paceKey{origin: "http://limited", credential: "Bearer k"}
	spent := &http.Response{StatusCode: http.StatusOK, Header: http.Header{
		"X-Ratelimit-Limit":     {"10"},
		"X-Ratelimit-Remaining": {"0"},
		"X-Ratelimit-Reset":     {strconv.FormatInt(now.Add(time.Hour).Unix(), 10)},
	}}
	p.release(limited, 0, spent, nil, now)
	for i := range 5 * maxPaceKeys {
		p.release(paceKey{origin: fmt.Sprintf("http://h%d", i)}, 0, nil, nil, now)
		if n := len(p.keys); n > 2*maxPaceKeys+1 {
			t.Fatalf("after %d hosts the pacer holds %d states, want at most %d", i+1, n, 2*maxPaceKeys+1)
		}
	}
	if st, ok := p.keys[limited]; !ok || !st.known || st.remaining != 0 {
		t.Errorf("the spent limit of %v was dropped", limited)
	}
}
