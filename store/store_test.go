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
