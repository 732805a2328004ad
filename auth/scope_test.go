package auth_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tollgate-dev/tollgate/auth"
)

func TestValidateScopes(t *testing.T) {
	tests := []struct {
		name   string
		scopes []string
		want   string // Reason of the *ScopeError, "" for nil
	}{
		{name: "all known", scopes: auth.KnownScopes()},
		{name: "star", scopes: []string{"*"}},
		{name: "one", scopes: []string{"leads:read"}},
		{name: "empty", scopes: nil, want: "no scopes"},
		{name: "unknown", scopes: []string{"leads:read", "leads:delete"}, want: "unknown scope"},
		{name: "case", scopes: []string{"Leads:read"}, want: "unknown scope"},
		{name: "duplicate", scopes: []string{"keys:read", "keys:read"}, want: "duplicate scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := auth.ValidateScopes(tt.scopes)
			var se *auth.ScopeError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("ValidateScopes(%q) = %v, want nil", tt.scopes, err)
			case tt.want != "" && !errors.As(err, &se):
				t.Fatalf("ValidateScopes(%q) = %v, want *ScopeError", tt.scopes, err)
			case tt.want != "" && se.Reason != tt.want:
				t.Fatalf("ValidateScopes(%q) reason = %q, want %q", tt.scopes, se.Reason, tt.want)
			}
		})
	}
}

func TestScopesMissing(t *testing.T) {
	tests := []struct {
		name     string
		have     auth.Scopes
		required []string
		want     []string
	}{
		{name: "none required", have: nil, required: nil, want: nil},
		{name: "has it", have: auth.Scopes{"leads:read"}, required: []string{"leads:read"}, want: nil},
		{name: "star grants all", have: auth.Scopes{"*"}, required: []string{"leads:write", "keys:write"}, want: nil},
		{name: "read is not write", have: auth.Scopes{"leads:read"}, required: []string{"leads:write"}, want: []string{"leads:write"}},
		{name: "some missing", have: auth.Scopes{"keys:read", "leads:read"}, required: []string{"keys:read", "keys:write", "leads:write"}, want: []string{"keys:write", "leads:write"}},
		{name: "no scopes", have: nil, required: []string{"sessions:read"}, want: []string{"sessions:read"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.have.Missing(tt.required)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("%q.Missing(%q) mismatch (-want +got):\n%s", tt.have, tt.required, diff)
			}
			for _, r := range tt.required {
				wantHas := !slices.Contains(tt.want, r)
				if tt.have.Has(r) != wantHas {
					t.Errorf("%q.Has(%q) = %v, want %v", tt.have, r, !wantHas, wantHas)
				}
			}
		})
	}
}

func TestKnownScopesAreScopes(t *testing.T) {
	for _, s := range auth.KnownScopes() {
		if !auth.IsScope(s) {
			t.Errorf("IsScope(%q) = false", s)
		}
	}
	if auth.IsScope("") || auth.IsScope("sessions") {
		t.Error("IsScope accepted an invalid scope")
	}
}
