package gateway

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestIdleConnCheck: the idle check closes the connection only once no
// byte went through it, either way, for the whole idle time; traffic puts
// the close off.
func TestIdleConnCheck(t *testing.T) {
	const idle = time.Hour // the timer never fires during the test: check is called by hand
	tests := []struct {
		name      string
		quiet     time.Duration // since the last byte
		wantClose bool
	}{
		{"traffic just now", 0, false},
		{"quiet for less than idle", idle - time.Minute, false},
		{"quiet for idle", idle, true},
		{"quiet for longer", 2 * idle, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			idled := false
			c := newIdleConn(client, idle, func() { idled = true })
			defer c.Close()
			go server.Write([]byte("x"))
			if _, err := c.Read(make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			// The last byte moved quiet ago: shift the connection's epoch
			// back by that much.
			c.epoch = c.epoch.Add(-tt.quiet)
			c.check()
			if idled != tt.wantClose {
				t.Errorf("closed %v, want %v", idled, tt.wantClose)
			}
			client.SetWriteDeadline(time.Now()) // a write that would wait fails at once
			_, err := client.Write([]byte("y"))
			if closed := errors.Is(err, io.ErrClosedPipe); closed != tt.wantClose {
				t.Errorf("write after check: %v; want closed %v", err, tt.wantClose)
			}
		})
	}
}
