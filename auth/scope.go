package auth

import (
	"fmt"
	"slices"
)

// The scopes a key can hold. ScopeAll grants every scope of the key's
// account; ScopeAdminWrite is the operator's, server-wide, and is granted
// only by name.
const (
	ScopeSessionsRead  = "sessions:read"
	ScopeSessionsWrite = "sessions:write"
	ScopeLeadsRead     = "leads:read"
	ScopeLeadsWrite    = "leads:write"
	ScopeKeysRead      = "keys:read"
	ScopeKeysWrite     = "keys:write"
	// ScopeAdminWrite reads and sets server-wide switches such as
	// maintenance mode. Those switches act on every account at once, so
	// ScopeAll does not include it: only a key that names it holds it, and
	// the keys API lets only such a key grant it (an operator creates the
	// first one with `tollgate keys create`, on the database directly).
	ScopeAdminWrite = "admin:write"
	ScopeAll        = "*"
)

// KnownScopes returns every valid scope, ScopeAll last. The caller owns the
// returned slice.
func KnownScopes() []string {
	return []string{
		ScopeSessionsRead, ScopeSessionsWrite,
		ScopeLeadsRead, ScopeLeadsWrite,
		ScopeKeysRead, ScopeKeysWrite,
		ScopeAdminWrite,
		ScopeAll,
	}
}

// IsScope reports whether s is one of KnownScopes.
func IsScope(s string) bool {
	switch s {
	case ScopeSessionsRead, ScopeSessionsWrite,
		ScopeLeadsRead, ScopeLeadsWrite,
		ScopeKeysRead, ScopeKeysWrite,
		ScopeAdminWrite,
		ScopeAll:
		return true
	}
	return false
}

// ScopeError reports an invalid scope list.
type ScopeError struct {
	Index  int    // position of the offending entry
	Scope  string // the offending entry
	Reason string // "unknown scope", "duplicate scope" or "no scopes"
}

// Error describes the invalid entry.
func (e *ScopeError) Error() string {
	if e.Index < 0 {
		return "auth: " + e.Reason
	}
	return fmt.Sprintf("auth: scopes[%d] %q: %s", e.Index, e.Scope, e.Reason)
}

// ValidateScopes checks that scopes is non-empty, holds only KnownScopes and
// no duplicates. The error, if any, is a *ScopeError.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return &ScopeError{Index: -1, Reason: "no scopes"}
	}
	for i, s := range scopes {
		if !IsScope(s) {
			return &ScopeError{Index: i, Scope: s, Reason: "unknown scope"}
		}
		if slices.Contains(scopes[:i], s) {
			return &ScopeError{Index: i, Scope: s, Reason: "duplicate scope"}
		}
	}
	return nil
}

// Scopes is the list of scopes a key holds. A nil Scopes holds none.
// Scopes values are shared between goroutines by the Verifier: do not
// modify one you did not build.
type Scopes []string

// Has reports whether s grants scope: it holds scope itself, or ScopeAll
// and scope is not ScopeAdminWrite.
func (s Scopes) Has(scope string) bool {
	for _, have := range s {
		if have == scope || have == ScopeAll && scope != ScopeAdminWrite {
			return true
		}
	}
	return false
}

// Missing returns the entries of required that s does not grant, in order,
// or nil when s grants them all.
func (s Scopes) Missing(required []string) []string {
	var missing []string
	for _, r := range required {
		if !s.Has(r) {
			missing = append(missing, r)
		}
	}
	return missing
}
