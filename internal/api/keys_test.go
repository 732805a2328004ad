package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
)

func body[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("status %d, body %s: %v", w.Code, w.Body, err)
	}
	return v
}

func TestKeysAPI(t *testing.T) {
	e := newEnv(t, nil)
	admin := bearer(e.admin)

	w := e.do("POST", "/v1/keys", `{"name":"ci","scopes":["leads:read","leads:write"],"rate":"60/1m"}`, admin...)
	if w.Code != 201 {
		t.Fatalf("create = %d: %s", w.Code, w.Body)
	}
	created := body[api.CreatedKey](t, w)
	if _, err := auth.ParseKey(created.Secret); err != nil || !strings.HasPrefix(created.Secret, created.Start) {
		t.Fatalf("secret %q start %q: %v", created.Secret, created.Start, err)
	}
	if w.Header().Get("Location") != "/v1/keys/"+created.ID || created.Rate != "60/1m" {
		t.Errorf("Location %q rate %q", w.Header().Get("Location"), created.Rate)
	}

	// The secret is never shown again.
	for _, target := range []string{"/v1/keys", "/v1/keys/" + created.ID} {
		w := e.do("GET", target, "", admin...)
		if w.Code != 200 || strings.Contains(w.Body.String(), created.Secret) || strings.Contains(w.Body.String(), `"key":`) {
			t.Errorf("GET %s = %d, shows the secret or fails: %s", target, w.Code, w.Body)
		}
	}
	list := body[struct {
		Data []api.Key `json:"data"`
	}](t, e.do("GET", "/v1/keys", "", admin...))
	if len(list.Data) != 2 {
		t.Errorf("list has %d keys, want 2 (admin, ci)", len(list.Data))
	}

	// The new key works, and its use reaches last_used_at after a flush.
	if w := e.do("GET", "/v1/leads-nope", "", bearer(created.Secret)...); w.Code != 404 {
		t.Errorf("unknown route = %d", w.Code)
	}
	if w := e.do("GET", "/v1/keys", "", bearer(created.Secret)...); w.Code != 403 {
		t.Errorf("leads key on /v1/keys = %d, want 403", w.Code)
	}
	if err := e.v.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := body[api.Key](t, e.do("GET", "/v1/keys/"+created.ID, "", admin...))
	if got.LastUsedAt == nil || !got.LastUsedAt.Equal(e.clock.Now()) {
		t.Errorf("last_used_at = %v, want %v", got.LastUsedAt, e.clock.Now())
	}

	// A key cannot grant what it lacks.
	keysOnly := e.newKey(auth.ScopeKeysWrite, auth.ScopeKeysRead).Secret
	w = e.do("POST", "/v1/keys", `{"name":"x","scopes":["leads:read"]}`, bearer(keysOnly)...)
	if w.Code != 403 || decode(t, w).Code != apierror.Forbidden {
		t.Errorf("escalation = %d: %s", w.Code, w.Body)
	}

	// Revoke: refused at once on this instance.
	if w := e.do("DELETE", "/v1/keys/"+created.ID, "", admin...); w.Code != 204 {
		t.Fatalf("revoke = %d: %s", w.Code, w.Body)
	}
	w = e.do("GET", "/v1/keys", "", bearer(created.Secret)...)
	if w.Code != 401 || decode(t, w).Details["reason"] != "revoked" {
		t.Errorf("revoked key = %d: %s", w.Code, w.Body)
	}
}

func TestKeysValidation(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		body  string
		code  apierror.Code
		field string
	}{
		{"no name", `{"scopes":["*"]}`, apierror.MissingField, "name"},
		{"no scopes", `{"name":"a"}`, apierror.MissingField, "scopes"},
		{"bad scope", `{"name":"a","scopes":["root"]}`, apierror.ValidationError, "scopes"},
		{"empty scopes", `{"name":"a","scopes":[]}`, apierror.ValidationError, "scopes"},
		{"bad rate", `{"name":"a","scopes":["*"],"rate":"lots"}`, apierror.ValidationError, "rate"},
		{"past expiry", `{"name":"a","scopes":["*"],"expires_at":"2020-01-01T00:00:00Z"}`, apierror.Unprocessable, "expires_at"},
		{"unknown field", `{"name":"a","scopes":["*"],"admin":true}`, apierror.InvalidRequest, "admin"},
		{"wrong type", `{"name":"a","scopes":"*"}`, apierror.InvalidRequest, "scopes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.do("POST", "/v1/keys", tt.body, bearer(e.admin)...)
			got := decode(t, w)
			if got.Code != tt.code || got.Details["field"] != tt.field || w.Code != tt.code.Status() {
				t.Errorf("%d %s field %v, want %s field %s: %s", w.Code, got.Code, got.Details["field"], tt.code, tt.field, w.Body)
			}
		})
	}
	w := e.do("POST", "/v1/keys", `{"name":"a","scopes":["root"],"rate":"lots"}`, bearer(e.admin)...)
	if errs, _ := decode(t, w).Details["errors"].([]any); len(errs) != 2 {
		t.Errorf("two bad fields: details.errors = %v", decode(t, w).Details["errors"])
	}
}

func TestKeysRotate(t *testing.T) {
	e := newEnv(t, nil)
	old := e.newKey(auth.ScopeKeysRead)
	w := e.do("POST", "/v1/keys/"+old.ID+"/rotate", `{"overlap":"1h"}`, bearer(e.admin)...)
	if w.Code != 201 {
		t.Fatalf("rotate = %d: %s", w.Code, w.Body)
	}
	next := body[api.CreatedKey](t, w)
	if next.PreviousKeyExpiresAt == nil || !next.PreviousKeyExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Errorf("previous_key_expires_at = %v", next.PreviousKeyExpiresAt)
	}
	for _, k := range []string{old.Secret, next.Secret} {
		if w := e.do("GET", "/v1/keys", "", bearer(k)...); w.Code != 200 {
			t.Errorf("during the overlap: %d", w.Code)
		}
	}
	e.clock.Add(time.Hour + 2*time.Second)
	w = e.do("GET", "/v1/keys", "", bearer(old.Secret)...)
	if w.Code != 401 || decode(t, w).Details["reason"] != "expired" {
		t.Errorf("old key after the overlap = %d: %s", w.Code, w.Body)
	}
	if w := e.do("GET", "/v1/keys", "", bearer(next.Secret)...); w.Code != 200 {
		t.Errorf("new key = %d", w.Code)
	}
	// overlap 0: the old key stops at once.
	w = e.do("POST", "/v1/keys/"+next.ID+"/rotate", `{"overlap":"0s"}`, bearer(e.admin)...)
	if w.Code != 201 {
		t.Fatalf("rotate 0 = %d: %s", w.Code, w.Body)
	}
	e.clock.Add(2 * time.Second) // past the verifier's cache lifetime
	if w := e.do("GET", "/v1/keys", "", bearer(next.Secret)...); w.Code != 401 {
		t.Errorf("old key after overlap 0 = %d", w.Code)
	}
	if w := e.do("POST", "/v1/keys/"+old.ID+"/rotate", `{"overlap":"-1h"}`, bearer(e.admin)...); decode(t, w).Code != apierror.ValidationError {
		t.Errorf("negative overlap: %s", w.Body)
	}
}

// TestOtherAccountsKeys: another account's key ids answer exactly as
// missing ones do.
func TestOtherAccountsKeys(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other, _, err := e.st.EnsureAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := api.CreateKey(ctx, e.st, other.ID, api.KeyRequest{Name: "theirs", Scopes: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/keys/%s", ""},
		{"DELETE", "/v1/keys/%s", ""},
		{"POST", "/v1/keys/%s/rotate", `{}`},
	} {
		t.Run(req.method+" "+req.path, func(t *testing.T) {
			a := e.do(req.method, strings.Replace(req.path, "%s", theirs.ID, 1), req.body, append(bearer(e.admin), "X-Request-Id", "same")...)
			b := e.do(req.method, strings.Replace(req.path, "%s", "key_01JZZZZZZZZZZZZZZZZZZZZZZZ", 1), req.body, append(bearer(e.admin), "X-Request-Id", "same")...)
			if a.Code != 404 || !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
				t.Errorf("theirs: %d %s\nmissing: %d %s", a.Code, a.Body, b.Code, b.Body)
			}
		})
	}
	if w := e.do("GET", "/v1/keys", "", bearer(theirs.Secret)...); w.Code != 200 || strings.Contains(w.Body.String(), e.account.ID) {
		t.Errorf("their list leaks ours: %s", w.Body)
	}
}

// TestNoSecretAtRest reads the whole SQLite database (and its WAL) after
// keys were made and used, and the debug log: no secret appears.
func TestNoSecretAtRest(t *testing.T) {
	dir := t.TempDir()
	e := newEnvAt(t, filepath.Join(dir, "t.db"))
	var secrets []string
	for range 5 {
		w := e.do("POST", "/v1/keys", `{"name":"k","scopes":["*"]}`, bearer(e.admin)...)
		secrets = append(secrets, body[api.CreatedKey](t, w).Secret)
	}
	secrets = append(secrets, e.admin)
	for _, s := range secrets {
		e.do("GET", "/v1/keys", "", bearer(s)...)
		e.do("GET", "/v1/keys", "", "x-api-key", s)
	}
	e.v.Flush(context.Background())
	files, _ := filepath.Glob(filepath.Join(dir, "t.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	all = append(all, e.logs.Bytes()...)
	if !bytes.Contains(e.logs.Bytes(), []byte(`"level":"DEBUG"`)) && !bytes.Contains(e.logs.Bytes(), []byte(`"msg":"request"`)) {
		t.Fatalf("no log lines were captured")
	}
	for _, s := range secrets {
		if bytes.Contains(all, []byte(s)) || bytes.Contains(all, []byte(s[8:])) {
			t.Errorf("secret %s… found at rest", s[:12])
		}
	}
}

// TestKeysCap checks the cap on an account's live keys: DefaultMaxKeys
// live keys and the next create is 422 UNPROCESSABLE with reason
// key_limit and the limit; revoking one makes room; rotation is not
// capped.
func TestKeysCap(t *testing.T) {
	e := newEnv(t, nil) // the admin key is live: one of the cap
	admin := bearer(e.admin)
	var last string
	for i := 1; i < api.DefaultMaxKeys; i++ {
		w := e.do("POST", "/v1/keys", `{"name":"k","scopes":["leads:read"]}`, admin...)
		if w.Code != 201 {
			t.Fatalf("create #%d of %d = %d: %s", i+1, api.DefaultMaxKeys, w.Code, w.Body)
		}
		last = body[api.CreatedKey](t, w).ID
	}
	spec := loadContract(t) // the 422s below must match the published document
	w := e.do("POST", "/v1/keys", `{"name":"one too many","scopes":["leads:read"]}`, admin...)
	spec.checkRecorder(t, httptest.NewRequest("POST", "/v1/keys", nil), w)
	got := decode(t, w)
	if w.Code != 422 || got.Code != apierror.Unprocessable || got.Details["reason"] != "key_limit" ||
		got.Details["limit"] != float64(api.DefaultMaxKeys) || got.Details["resource"] != "key" {
		t.Fatalf("create past the cap = %d: %s", w.Code, w.Body)
	}
	if !strings.Contains(got.Message, "revoke one") {
		t.Errorf("message %q does not say what to do", got.Message)
	}
	w = e.do("POST", "/v1/keys/"+last+"/rotate", `{"overlap":"1h"}`, admin...)
	if w.Code != 201 {
		t.Fatalf("rotate at the cap = %d, want 201 (one overlap is allowed): %s", w.Code, w.Body)
	}
	successor := body[api.CreatedKey](t, w).ID
	// Rotating again with an overlap would pile up live keys: refused,
	// and allowed without one.
	w = e.do("POST", "/v1/keys/"+successor+"/rotate", `{"overlap":"1h"}`, admin...)
	spec.checkRecorder(t, httptest.NewRequest("POST", "/v1/keys/"+successor+"/rotate", nil), w)
	if got := decode(t, w); w.Code != 422 || got.Details["reason"] != "key_limit" || got.Details["limit"] != float64(api.DefaultMaxKeys) {
		t.Errorf("second rotation with an overlap past the cap = %d: %s", w.Code, w.Body)
	}
	w = e.do("POST", "/v1/keys/"+successor+"/rotate", `{"overlap":"0s"}`, admin...)
	if w.Code != 201 {
		t.Fatalf("rotation without an overlap past the cap = %d, want 201: %s", w.Code, w.Body)
	}
	if w := e.do("DELETE", "/v1/keys/"+last, "", admin...); w.Code != 204 {
		t.Fatalf("revoke = %d: %s", w.Code, w.Body)
	}
	// The first rotation's overlap still counts the old key until it
	// ends, so revoking it leaves the successor live: still at the cap.
	if w := e.do("POST", "/v1/keys", `{"name":"k","scopes":["leads:read"]}`, admin...); w.Code != 422 {
		t.Errorf("create after revoking the rotated key = %d, want 422 (its successor is live): %s", w.Code, w.Body)
	}
	list := body[struct {
		Data []api.Key `json:"data"`
	}](t, e.do("GET", "/v1/keys?limit=100", "", admin...))
	var victim string
	for _, k := range list.Data {
		if k.RevokedAt == nil && k.Name == "k" {
			victim = k.ID
			break
		}
	}
	if w := e.do("DELETE", "/v1/keys/"+victim, "", admin...); w.Code != 204 {
		t.Fatalf("revoke %s = %d: %s", victim, w.Code, w.Body)
	}
	if w := e.do("POST", "/v1/keys", `{"name":"k","scopes":["leads:read"]}`, admin...); w.Code != 201 {
		t.Errorf("create after revoking one = %d, want 201: %s", w.Code, w.Body)
	}
}
