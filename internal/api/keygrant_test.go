package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/ratelimit"
)

// TestKeyGrantBounds checks that a key manages only keys that can do no
// more than it can: it cannot create, rotate or revoke a key with scopes
// it lacks, nor create or rotate one with a faster rate or a longer life.
func TestKeyGrantBounds(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{noRateLimit: true})
	ctx := context.Background()
	hour := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	mk := func(req api.KeyRequest) api.CreatedKey {
		t.Helper()
		req.Name = "k"
		ck, err := api.CreateKey(ctx, l.st, l.account.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		return ck
	}
	keysOnly := []string{auth.ScopeKeysRead, auth.ScopeKeysWrite}
	low := mk(api.KeyRequest{Scopes: keysOnly})
	slow := mk(api.KeyRequest{Scopes: []string{auth.ScopeAll}, Rate: "2/1m"})
	brief := mk(api.KeyRequest{Scopes: []string{auth.ScopeAll}, ExpiresAt: &hour})
	admin := mk(api.KeyRequest{Scopes: []string{auth.ScopeAll}})
	forever := mk(api.KeyRequest{Scopes: keysOnly})
	exp := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

	tests := []struct {
		name         string
		caller       api.CreatedKey
		method, path string
		body         string
		wantStatus   int
		wantDetails  map[string]any // FORBIDDEN details
		wantRate     string         // of a created key
		wantExpires  *time.Time     // of a created key
	}{
		{name: "create with a scope the caller lacks", caller: low, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["*"]}`,
			wantStatus: 403, wantDetails: map[string]any{"missing_scopes": []string{"*"}}},
		{name: "rotate a key with scopes the caller lacks", caller: low, method: "POST", path: "/v1/keys/" + admin.ID + "/rotate", body: `{"overlap":"1h"}`,
			wantStatus: 403, wantDetails: map[string]any{"required_scopes": []string{"*"}, "missing_scopes": []string{"*"}}},
		{name: "revoke a key with scopes the caller lacks", caller: low, method: "DELETE", path: "/v1/keys/" + admin.ID,
			wantStatus: 403, wantDetails: map[string]any{"missing_scopes": []string{"*"}}},
		{name: "rotate a key with the caller's scopes", caller: low, method: "POST", path: "/v1/keys/" + forever.ID + "/rotate", body: `{"overlap":"0s"}`,
			wantStatus: 201},
		{name: "create with a faster rate", caller: slow, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"],"rate":"100000/1s"}`,
			wantStatus: 403, wantDetails: map[string]any{"field": "rate"}},
		{name: "create with a bigger burst", caller: slow, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"],"rate":"2/1m;burst=3"}`,
			wantStatus: 403, wantDetails: map[string]any{"field": "rate"}},
		{name: "create with a slower rate", caller: slow, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"],"rate":"1/1m"}`,
			wantStatus: 201, wantRate: "1/1m"},
		{name: "create without a rate inherits the caller's", caller: slow, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"]}`,
			wantStatus: 201, wantRate: "2/1m"},
		{name: "default plan creating a faster rate", caller: admin, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"],"rate":"100000/1s"}`,
			wantStatus: 403, wantDetails: map[string]any{"field": "rate"}},
		{name: "rotate a faster key", caller: slow, method: "POST", path: "/v1/keys/" + forever.ID + "/rotate", body: `{}`,
			wantStatus: 403, wantDetails: map[string]any{"field": "rate"}},
		{name: "create outliving the caller", caller: brief, method: "POST", path: "/v1/keys", body: fmt.Sprintf(`{"name":"x","scopes":["leads:read"],"expires_at":%q}`, exp(2*time.Hour)),
			wantStatus: 403, wantDetails: map[string]any{"field": "expires_at"}},
		{name: "create without expiry inherits the caller's", caller: brief, method: "POST", path: "/v1/keys", body: `{"name":"x","scopes":["leads:read"]}`,
			wantStatus: 201, wantExpires: &hour},
		{name: "create expiring first", caller: brief, method: "POST", path: "/v1/keys", body: fmt.Sprintf(`{"name":"x","scopes":["leads:read"],"expires_at":%q}`, exp(time.Minute)),
			wantStatus: 201},
		{name: "rotate a key that never expires", caller: brief, method: "POST", path: "/v1/keys/" + admin.ID + "/rotate", body: `{}`,
			wantStatus: 403, wantDetails: map[string]any{"field": "expires_at"}},
		{name: "rotate itself", caller: brief, method: "POST", path: "/v1/keys/" + brief.ID + "/rotate", body: `{"overlap":"1m"}`,
			wantStatus: 201, wantExpires: &hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := l.call(tt.method, tt.path, tt.body, bearer(tt.caller.Secret)...)
			if tt.wantStatus == 403 {
				wantError(t, r, apierror.Forbidden, "", tt.wantDetails)
				return
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			ck := into[api.CreatedKey](t, r)
			if tt.wantRate != "" && ck.Rate != tt.wantRate {
				t.Errorf("rate = %q, want %q", ck.Rate, tt.wantRate)
			}
			if tt.wantExpires != nil && (ck.ExpiresAt == nil || !ck.ExpiresAt.Equal(*tt.wantExpires)) {
				t.Errorf("expires_at = %v, want %v", ck.ExpiresAt, tt.wantExpires)
			}
		})
	}
	// The refused rotation and revocation left the admin key working.
	if r := l.call("GET", "/v1/leads", "", bearer(admin.Secret)...); r.status != 200 {
		t.Errorf("admin key after refused rotate and revoke: %d %s", r.status, r.body)
	}
}

// TestAdminScopeIsNamed checks that the server-wide maintenance switch
// needs admin:write by name: "*" (of any account) does not grant it, nor
// lets a key grant it.
func TestAdminScopeIsNamed(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{noRateLimit: true})
	theirs := l.otherAccountKey(auth.ScopeAll)
	for _, key := range []string{l.admin, theirs.Secret} {
		wantError(t, l.call("PUT", "/v1/admin/maintenance", `{"enabled":true}`, bearer(key)...), apierror.Forbidden, "",
			map[string]any{"missing_scopes": []string{auth.ScopeAdminWrite}})
		wantError(t, l.call("POST", "/v1/keys", `{"name":"op","scopes":["admin:write"]}`, bearer(key)...), apierror.Forbidden, "",
			map[string]any{"missing_scopes": []string{auth.ScopeAdminWrite}})
	}
	if l.maint.On() {
		t.Fatal("a * key turned maintenance on")
	}
	op := l.key(auth.ScopeAdminWrite)
	if r := l.call("PUT", "/v1/admin/maintenance", `{"enabled":true}`, bearer(op)...); r.status != 200 || !l.maint.On() {
		t.Errorf("admin:write key: %d %s, on = %v", r.status, r.body, l.maint.On())
	}
}

// TestKeyRateStoredNormalised checks that a key's rate is stored in one
// form and that an overlong one is refused.
func TestKeyRateStoredNormalised(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{noRateLimit: true})
	r := l.as("POST", "/v1/keys", `{"name":"p","scopes":["leads:read"],"rate":"  60/60s ; burst=60 "}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if ck := into[api.CreatedKey](t, r); ck.Rate != "60/1m" {
		t.Errorf("rate = %q, want %q", ck.Rate, "60/1m")
	}
	pad := strings.Repeat(" ", 900<<10)
	wantError(t, l.as("POST", "/v1/keys", `{"name":"p","scopes":["leads:read"],"rate":"`+pad+`600/1m"}`),
		apierror.ValidationError, "", map[string]any{"field": "rate"})
}

// TestKeyRateLength: the longest valid plan in normal form passes
// validation; the bound only stops padding.
func TestKeyRateLength(t *testing.T) {
	longest := "9223372036854775807/2562047h47m16.854775807s;burst=1152921504606846"
	if p, err := ratelimit.ParsePolicy(longest); err != nil || p.String() != longest {
		t.Fatalf("ParsePolicy(%q) = %v, %v; want it valid and normal", longest, p, err)
	}
	for _, tt := range []struct {
		rate    string
		wantErr bool
	}{
		{longest, false},
		{"  " + longest + "  ", false},
		{strings.Repeat(" ", 200) + "60/1m", true},
	} {
		err := api.KeyRequest{Name: "x", Scopes: []string{"leads:read"}, Rate: tt.rate}.Validate(time.Now())
		if (err != nil) != tt.wantErr {
			t.Errorf("Validate(rate of %d bytes) = %v, want error %v", len(tt.rate), err, tt.wantErr)
		}
	}
}

// TestRevokedCallerCannotGrant: a key revoked in the store (by another
// instance, or the CLI) while this instance still has it cached cannot
// create or rotate keys in that window: the keys API reads the calling key
// from the store, answers 401 revoked, and forgets the cached answer.
func TestRevokedCallerCannotGrant(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{noRateLimit: true})
	ctx := context.Background()
	ck, err := api.CreateKey(ctx, l.st, l.account.ID, api.KeyRequest{Name: "soon revoked", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	if r := l.call("GET", "/v1/keys", "", bearer(ck.Secret)...); r.status != 200 { // now cached
		t.Fatalf("before: %d", r.status)
	}
	if _, err := l.st.RevokeKey(ctx, l.account.ID, ck.ID, time.Now()); err != nil { // not through this instance
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/keys", `{"name":"heir","scopes":["*"]}`},
		{"POST", "/v1/keys/" + ck.ID + "/rotate", `{}`},
	} {
		wantError(t, l.call(c.method, c.path, c.body, bearer(ck.Secret)...), apierror.Unauthorized, "", map[string]any{"reason": "revoked"})
	}
	// Forgotten: the next request is refused by Auth, not served from cache.
	wantError(t, l.call("GET", "/v1/keys", "", bearer(ck.Secret)...), apierror.Unauthorized, "", map[string]any{"reason": "revoked"})
}

// TestKeyNameLength: a key's name is at most 100 characters, as the
// OpenAPI document's maxLength says and the refusal reads, whatever their
// size in bytes.
func TestKeyNameLength(t *testing.T) {
	l := startLive(t, sqliteStore(t), liveOptions{noRateLimit: true})
	for _, tt := range []struct {
		name, keyName string
		want          int
	}{
		{"100 ASCII", strings.Repeat("k", 100), 201},
		{"101 ASCII", strings.Repeat("k", 101), 400},
		{"100 two-byte", strings.Repeat("é", 100), 201},
		{"100 four-byte", strings.Repeat("🔑", 100), 201},
		{"101 two-byte", strings.Repeat("é", 101), 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := l.as("POST", "/v1/keys", `{"name":"`+tt.keyName+`","scopes":["leads:read"]}`)
			if r.status != tt.want {
				t.Fatalf("name of %d characters: %d %s, want %d", len([]rune(tt.keyName)), r.status, r.body, tt.want)
			}
			if tt.want == 400 {
				wantError(t, r, apierror.ValidationError, "Must be at most 100 characters", map[string]any{"field": "name", "reason": "Must be at most 100 characters"})
			}
		})
	}
}
