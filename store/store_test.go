package store_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

func TestErrors(t *testing.T) {
	conflict := fmt.Errorf("sqlite: create lead: %w", &store.ConflictError{Resource: "lead", Field: "phone"})
	var ce *store.ConflictError
	if !errors.Is(conflict, store.ErrConflict) || !errors.As(conflict, &ce) || ce.Field != "phone" {
		t.Errorf("wrapped *ConflictError: Is(ErrConflict) or As failed: %v", conflict)
	}
	if errors.Is(conflict, store.ErrNotFound) || errors.Is(conflict, store.ErrUnavailable) {
		t.Errorf("ConflictError matches an unrelated sentinel")
	}
	un := store.Unavailable(io.ErrUnexpectedEOF)
	if !errors.Is(un, store.ErrUnavailable) || !errors.Is(un, io.ErrUnexpectedEOF) {
		t.Errorf("Unavailable(err) = %v, want both ErrUnavailable and err in the chain", un)
	}
}

func TestPageEffectiveLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"zero", 0, store.DefaultLimit},
		{"negative", -5, store.DefaultLimit},
		{"one", 1, 1},
		{"max", store.MaxLimit, store.MaxLimit},
		{"over max", store.MaxLimit + 1, store.MaxLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (store.Page{Limit: tt.limit}).EffectiveLimit(); got != tt.want {
				t.Errorf("Page{Limit: %d}.EffectiveLimit() = %d, want %d", tt.limit, got, tt.want)
			}
		})
	}
}

func TestNewIDSorts(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	prev := ""
	for i := range 1000 {
		id := store.NewID(store.PrefixLead, now.Add(time.Duration(i/100)*time.Millisecond))
		if !strings.HasPrefix(id, "lead_") || len(id) != len("lead_")+26 {
			t.Fatalf("NewID = %q, want lead_<26 chars>", id)
		}
		if id <= prev {
			t.Fatalf("NewID #%d = %q, not after %q", i, id, prev)
		}
		prev = id
	}
}

func TestNextID(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := store.NewID(store.PrefixSession, now.Add(time.Hour)) // a clock ahead of now
	tests := []struct {
		name    string
		prev    string
		want    string // "" means: any id after prev
		wantErr bool
	}{
		{name: "first", prev: ""},
		{name: "clock ahead of prev", prev: store.NewID(store.PrefixSession, now.Add(-time.Hour))},
		{name: "prev ahead of the clock: its successor", prev: later},
		{name: "successor carries", prev: "ses_01M82J6KHXQWJY1QCZ6NW8QJ0Z", want: "ses_01M82J6KHXQWJY1QCZ6NW8QJ10"},
		{name: "carries into the time", prev: "ses_01M82J6KHXZZZZZZZZZZZZZZZZ", want: "ses_01M82J6KHY0000000000000000"},
		{name: "largest ULID", prev: "ses_7ZZZZZZZZZZZZZZZZZZZZZZZZZ", wantErr: true},
		{name: "other prefix", prev: store.NewID(store.PrefixLead, now.Add(time.Hour)), wantErr: true},
		{name: "not a ULID", prev: "ses_zzz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := store.NextID(store.PrefixSession, now, tt.prev)
			if tt.wantErr {
				if err == nil {
					t.Errorf("NextID(%q) = %q, want an error", tt.prev, id)
				}
				return
			}
			if err != nil || id <= tt.prev || !strings.HasPrefix(id, "ses_") || len(id) != len("ses_")+26 {
				t.Fatalf("NextID(%q) = %q, %v; want a ses_ id after it", tt.prev, id, err)
			}
			if tt.want != "" && id != tt.want {
				t.Errorf("NextID(%q) = %q, want %q", tt.prev, id, tt.want)
			}
		})
	}
}

func TestRotationExpiry(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	tests := []struct {
		name    string
		old     store.APIKey
		overlap time.Duration
		want    time.Time
		wantErr error
	}{
		{name: "no expiry", overlap: time.Hour, want: now.Add(time.Hour)},
		{name: "negative overlap is now", overlap: -time.Hour, want: now},
		{name: "later expiry is shortened", old: store.APIKey{ExpiresAt: at(48 * time.Hour)}, overlap: time.Hour, want: now.Add(time.Hour)},
		{name: "earlier expiry is kept", old: store.APIKey{ExpiresAt: at(time.Minute)}, overlap: time.Hour, want: now.Add(time.Minute)},
		{name: "expired", old: store.APIKey{ExpiresAt: at(0)}, overlap: time.Hour, wantErr: store.ErrConflict},
		{name: "revoked", old: store.APIKey{RevokedAt: at(-time.Hour)}, overlap: time.Hour, wantErr: store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := store.RotationExpiry(tt.old, now, tt.overlap)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("RotationExpiry error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && !got.Equal(tt.want) {
				t.Errorf("RotationExpiry = %v, want %v", got, tt.want)
			}
		})
	}
}
