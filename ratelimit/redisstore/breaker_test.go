package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// replyError is an error reply from Redis, as go-redis returns it (a type
// with a RedisError method).
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestIsOutage: only errors Redis answers because of the call itself leave
// the breaker alone; no answer, or an answer that Redis cannot serve now,
// is an outage.
func TestIsOutage(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"invalid expire time", replyError("ERR invalid expire time in 'set' command script: 3bd8…, on @user_script:22."), false},
		{"script runtime error", replyError("ERR user_script:1: attempt to perform arithmetic on a nil value script: 49a0…"), false},
		{"wrong type", replyError("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"cross slot", replyError("CROSSSLOT Keys in request don't hash to the same slot"), false},
		{"wrapped reply", fmt.Errorf("pipeline: %w", replyError("ERR invalid expire time")), false},
		{"too many clients", replyError("ERR max number of clients reached"), true},
		{"loading", replyError("LOADING Redis is loading the dataset in memory"), true},
		{"busy", replyError("BUSY Redis is busy running a script."), true},
		{"read-only replica", replyError("READONLY You can't write against a read only replica."), true},
		{"out of memory", replyError("OOM command not allowed when used memory > 'maxmemory'."), true},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{"timeout", context.DeadlineExceeded, true},
		{"short reply", errors.New("script replied 1 values, want 3"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isOutage(tt.err); got != tt.want {
				t.Errorf("isOutage(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestBreaker walks the breaker through its states with explicit times.
func TestBreaker(t *testing.T) {
	var changes []bool
	b := &breaker{threshold: 3, cooldown: 100, onChange: func(open bool) { changes = append(changes, open) }}
	type step struct {
		name   string
		op     string // "allow", "ok", "fail", "abandon"
		at     int64
		want   bool // for allow
		status int32
	}
	steps := []step{
		{"closed allows", "allow", 0, true, closed},
		{"one failure", "fail", 1, false, closed},
		{"two failures", "fail", 2, false, closed},
		{"success resets the count", "ok", 3, false, closed},
		{"fail 1", "fail", 4, false, closed},
		{"fail 2", "fail", 5, false, closed},
		{"fail 3 opens", "fail", 10, false, open},
		{"open refuses", "allow", 50, false, open},
		{"open refuses just before cool-down", "allow", 109, false, open},
		{"cool-down over: one probe", "allow", 110, true, halfOpen},
		{"second caller during probe refused", "allow", 111, false, halfOpen},
		{"probe fails: open again", "fail", 120, false, open},
		{"cool-down restarts from the failed probe", "allow", 210, false, open},
		{"next probe", "allow", 220, true, halfOpen},
		{"abandoned probe gives it back", "abandon", 221, false, open},
		{"probe again at once", "allow", 222, true, halfOpen},
		{"probe succeeds: closed", "ok", 223, false, closed},
		{"closed allows again", "allow", 224, true, closed},
	}
	for _, st := range steps {
		switch st.op {
		case "allow":
			if got := b.allow(st.at); got != st.want {
				t.Errorf("%s: allow(%d) = %v, want %v", st.name, st.at, got, st.want)
			}
		case "ok":
			b.success()
		case "fail":
			b.failure(st.at)
		case "abandon":
			b.abandon()
		}
		if got := b.state.Load(); got != st.status {
			t.Errorf("%s: state = %d, want %d", st.name, got, st.status)
		}
	}
	if want := []bool{true, false}; len(changes) != len(want) || changes[0] != want[0] || changes[1] != want[1] {
		t.Errorf("onChange calls = %v, want %v", changes, want)
	}
}
