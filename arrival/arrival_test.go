package arrival_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/arrival"
)

// otherKey is a context key of the test's own, for a value between the
// arrival time and the caller.
type otherKey struct{}

func TestFrom(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		ctx    context.Context
		want   time.Time
		wantOK bool
	}{
		{"none", context.Background(), time.Time{}, false},
		{"system clock", arrival.With(context.Background(), now), now, true},
		{"derived from the system clock", arrival.With(context.Background(), now.Add(-time.Second)), now.Add(-time.Second), true},
		{"injected clock", arrival.With(context.Background(), time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)), time.Time{}, false},
		{"monotonic reading stripped", arrival.With(context.Background(), now.Round(0)), time.Time{}, false},
		{"zero", arrival.With(context.Background(), time.Time{}), time.Time{}, false},
		{"nested", context.WithValue(arrival.With(context.Background(), now), otherKey{}, 1), now, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := arrival.From(tt.ctx)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("From() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestIsKey(t *testing.T) {
	if !arrival.IsKey(arrival.Key) {
		t.Error("IsKey(Key) = false")
	}
	if arrival.IsKey(struct{}{}) {
		t.Error("IsKey(struct{}{}) = true")
	}
}
