package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
	"github.com/tollgate-dev/tollgate/store"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigPrecedence(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantDB   string
		wantRate string
	}{
		{"defaults", nil, nil, "localhost:8080", "tollgate.db", "100/1m"},
		{"env over default", nil, map[string]string{"TOLLGATE_ADDR": ":9000", "TOLLGATE_DATABASE": "postgres://x", "TOLLGATE_RATE_DEFAULT": "5/1s"}, ":9000", "postgres://x", "5/1s"},
		{"flag over env", []string{"--addr", ":7000", "-database=a.db"}, map[string]string{"TOLLGATE_ADDR": ":9000", "TOLLGATE_DATABASE": "b.db"}, ":7000", "a.db", "100/1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(env{getenv: envOf(tt.env), stderr: io.Discard}, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if c.addr != tt.wantAddr || c.database != tt.wantDB || c.rateDefault.String() != tt.wantRate {
				t.Errorf("addr %q db %q rate %q, want %q %q %q", c.addr, c.database, c.rateDefault, tt.wantAddr, tt.wantDB, tt.wantRate)
			}
		})
	}
	c, err := parseServe(env{getenv: envOf(map[string]string{"TOLLGATE_RATE_FAIL": "closed", "TOLLGATE_RATELIMIT_HEADERS": "legacy,ietf", "TOLLGATE_SUCCESS_FIELD": "true"}), stderr: io.Discard}, nil)
	if err != nil || c.rateFail != redisstore.FailClosed || c.rateHeaders != 3 || !c.successField {
		t.Errorf("env: %+v %v", c, err)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string // in stderr, when not empty
	}{
		{"no command", nil, nil, 2, ""},
		{"unknown command", []string{"frobnicate"}, nil, 2, ""},
		{"help", []string{"help"}, nil, 0, ""},
		{"serve bad flag", []string{"serve", "--nope"}, nil, 2, ""},
		{"serve bad rate", []string{"serve", "--rate-default", "lots"}, nil, 2, ""},
		{"serve bad env", []string{"serve"}, map[string]string{"TOLLGATE_BODY_LIMIT": "big"}, 2, ""},
		{"serve bad fail policy", []string{"serve", "--rate-fail", "maybe"}, nil, 2, ""},
		{"serve help", []string{"serve", "-h"}, nil, 0, ""},
		{"keys create help", []string{"keys", "create", "-h"}, nil, 0, ""},
		{"help keys", []string{"help", "keys"}, nil, 0, ""},
		{"keys create extra words", []string{"keys", "create", "--name", "x", "--scopes", "leads:read", "leads:write", "--database", ":memory:"}, nil, 2, "unexpected arguments"},
		{"keys list extra words", []string{"keys", "list", "extra", "--database", ":memory:"}, nil, 2, "unexpected arguments"},
		{"keys revoke two ids", []string{"keys", "revoke", "key_a", "key_b", "--database", ":memory:"}, nil, 2, "exactly one key ID"},
		{"keys empty account", []string{"keys", "list", "--account", "", "--database", ":memory:"}, nil, 2, "--account"},
		// ":memory:" cannot be opened: exit 2 shows the flags were
		// refused before the database was touched.
		{"serve negative body limit", []string{"serve", "--body-limit", "-1", "--database", ":memory:"}, nil, 2, "-body-limit"},
		{"serve zero request timeout from env", []string{"serve", "--database", ":memory:"}, map[string]string{"TOLLGATE_REQUEST_TIMEOUT": "0"}, 2, "-request-timeout"},
		{"keys no sub", []string{"keys"}, nil, 2, ""},
		{"keys create without scopes", []string{"keys", "create", "--name", "x", "--database", ":memory:"}, nil, 2, ""},
		{"keys create negative expiry", []string{"keys", "create", "--name", "x", "--scopes", "*", "--expires", "-1h", "--database", ":memory:"}, nil, 2, "-expires"},
		{"keys rotate negative overlap", []string{"keys", "rotate", "key_x", "--overlap", "-1h", "--database", ":memory:"}, nil, 2, "-overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tt.args, envOf(tt.env), io.Discard, &stderr)
			if got := exitCode(err); got != tt.code {
				t.Errorf("exit %d, want %d (err %v)\n%s", got, tt.code, err, stderr.String())
			}
			if tt.code == 2 && stderr.Len() == 0 {
				t.Errorf("usage error without a message")
			}
			if !strings.Contains(stderr.String(), tt.msg) {
				t.Errorf("stderr = %q, want it to name %q", stderr.String(), tt.msg)
			}
		})
	}
	if exitCode(flag.ErrHelp) != 0 || exitCode(errors.New("x")) != 1 || exitCode(nil) != 0 {
		t.Errorf("exitCode mapping")
	}
}

// TestServeNumericFlags checks that every number and duration serve takes
// is refused, from a flag or the environment, when it is out of range, with
// a message that names the flag; in range, it is kept.
func TestServeNumericFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // "" = accepted
	}{
		{"body limit 1", []string{"--body-limit", "1"}, nil, ""},
		{"body limit 0", []string{"--body-limit", "0"}, nil, "-body-limit"},
		{"body limit -1", []string{"--body-limit", "-1"}, nil, "-body-limit"},
		{"body limit -1 from env", nil, map[string]string{"TOLLGATE_BODY_LIMIT": "-1"}, "TOLLGATE_BODY_LIMIT"},
		{"request timeout 1ms", []string{"--request-timeout", "1ms"}, nil, ""},
		{"request timeout 0s", []string{"--request-timeout", "0s"}, nil, "-request-timeout"},
		{"request timeout -5s", []string{"--request-timeout", "-5s"}, nil, "-request-timeout"},
		{"request timeout 0 from env", nil, map[string]string{"TOLLGATE_REQUEST_TIMEOUT": "0"}, "TOLLGATE_REQUEST_TIMEOUT"},
		{"max concurrency 1", []string{"--max-concurrency", "1"}, nil, ""},
		{"max concurrency 0", []string{"--max-concurrency", "0"}, nil, "-max-concurrency"},
		{"max concurrency -3", []string{"--max-concurrency", "-3"}, nil, "-max-concurrency"},
		{"max concurrency -3 from env", nil, map[string]string{"TOLLGATE_MAX_CONCURRENCY": "-3"}, "TOLLGATE_MAX_CONCURRENCY"},
		{"idempotency retention 31s", []string{"--idempotency-retention", "31s"}, nil, ""},
		{"idempotency retention 1s, lease 999ms", []string{"--idempotency-retention", "1s", "--idempotency-lease", "999ms"}, nil, ""},
		{"idempotency retention 1s below the default lease", []string{"--idempotency-retention", "1s"}, nil, "-idempotency-lease"},
		{"idempotency retention equal to lease", []string{"--idempotency-retention", "1m", "--idempotency-lease", "1m"}, nil, "-idempotency-retention"},
		{"idempotency lease above retention from env", nil, map[string]string{"TOLLGATE_IDEMPOTENCY_LEASE": "25h"}, "TOLLGATE_IDEMPOTENCY_LEASE"},
		{"idempotency retention 0s", []string{"--idempotency-retention", "0s"}, nil, "-idempotency-retention"},
		{"idempotency lease -1s from env", nil, map[string]string{"TOLLGATE_IDEMPOTENCY_LEASE": "-1s"}, "-idempotency-lease"},
		{"max keys 1", []string{"--max-keys", "1"}, nil, ""},
		{"max keys -1, no cap", []string{"--max-keys", "-1"}, nil, ""},
		{"max keys 0", []string{"--max-keys", "0"}, nil, "-max-keys"},
		{"max keys -2 from env", nil, map[string]string{"TOLLGATE_MAX_KEYS": "-2"}, "TOLLGATE_MAX_KEYS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(env{getenv: envOf(tt.env), stderr: io.Discard}, tt.args)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseServe(%q) = %v, want it accepted", tt.args, err)
				}
				if c.bodyLimit <= 0 || c.requestTimeout <= 0 || c.maxConcurrency <= 0 || c.idemRetention <= 0 || c.idemLease <= 0 || c.maxKeys == 0 || c.maxKeys < -1 {
					t.Errorf("parseServe(%q) = %+v, want every limit positive", tt.args, c)
				}
				return
			}
			if exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), tt.wantErr) {
				t.Errorf("parseServe(%q) = %v (exit %d), want a usage error naming %q", tt.args, err, exitCode(err), tt.wantErr)
			}
		})
	}
}

// TestKeysDurations checks the durations of keys create and keys rotate: 0
// is allowed (never expires; the old key stops at once), a negative one is
// refused before anything is written.
func TestKeysDurations(t *testing.T) {
	tests := []struct {
		name    string
		args    []string // after "keys"; "ID" is replaced by an existing key's id
		wantErr string   // "" = accepted
		check   func(t *testing.T, ck api.CreatedKey)
	}{
		{"create, no expiry", []string{"create", "--name", "n", "--scopes", "*", "--expires", "0"}, "", func(t *testing.T, ck api.CreatedKey) {
			if ck.ExpiresAt != nil {
				t.Errorf("expires_at = %v, want none", ck.ExpiresAt)
			}
		}},
		{"create, expires in 1h", []string{"create", "--name", "n", "--scopes", "*", "--expires", "1h"}, "", func(t *testing.T, ck api.CreatedKey) {
			if ck.ExpiresAt == nil || !ck.ExpiresAt.After(time.Now()) {
				t.Errorf("expires_at = %v, want in an hour", ck.ExpiresAt)
			}
		}},
		{"create, negative expiry", []string{"create", "--name", "n", "--scopes", "*", "--expires", "-1h"}, "-expires", nil},
		{"rotate, no overlap", []string{"rotate", "ID", "--overlap", "0s"}, "", func(t *testing.T, ck api.CreatedKey) {
			if ck.PreviousKeyExpiresAt == nil || ck.PreviousKeyExpiresAt.After(time.Now()) {
				t.Errorf("previous_key_expires_at = %v, want now", ck.PreviousKeyExpiresAt)
			}
		}},
		{"rotate, negative overlap", []string{"rotate", "ID", "--overlap", "-1h"}, "-overlap", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "k.db")
			var existing api.CreatedKey
			if err := json.Unmarshal([]byte(runOK(t, "keys", "create", "--database", db, "--name", "old", "--scopes", "*", "--json")), &existing); err != nil {
				t.Fatal(err)
			}
			args := []string{"keys"}
			for _, a := range tt.args {
				if a == "ID" {
					a = existing.ID
				}
				args = append(args, a)
			}
			args = append(args, "--database", db, "--json")
			var out, stderr bytes.Buffer
			err := run(context.Background(), args, envOf(nil), &out, &stderr)
			if tt.wantErr != "" {
				if exitCode(err) != 2 || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Errorf("tollgate %s: exit %d, stderr %q; want exit 2 naming %q", strings.Join(args, " "), exitCode(err), stderr.String(), tt.wantErr)
				}
				var list []api.Key
				if err := json.Unmarshal([]byte(runOK(t, "keys", "list", "--database", db, "--json")), &list); err != nil {
					t.Fatal(err)
				}
				if len(list) != 1 || list[0].ExpiresAt != nil {
					t.Errorf("after a refused command, keys = %+v, want the one key, unchanged", list)
				}
				return
			}
			if err != nil {
				t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			var ck api.CreatedKey
			if err := json.Unmarshal(out.Bytes(), &ck); err != nil {
				t.Fatal(err)
			}
			tt.check(t, ck)
		})
	}
}

// failKeyWrite is a store whose first key write fails, as a locked or
// full database would make it.
type failKeyWrite struct {
	store.Store
	failed bool
}

func (f *failKeyWrite) CreateKeyCapped(ctx context.Context, k store.APIKey, max int) (store.APIKey, error) {
	if !f.failed {
		f.failed = true
		return store.APIKey{}, store.Unavailable(errors.New("database is locked"))
	}
	return f.Store.CreateKeyCapped(ctx, k, max)
}

// TestBootstrap checks that serve prints an admin key on the first start
// of an account that has no key, whatever ran before, and never again.
func TestBootstrap(t *testing.T) {
	const (
		printed = "key"
		silent  = "none"
		failed  = "error"
	)
	tests := []struct {
		name      string
		before    [][]string // tollgate commands run first, without --database
		failFirst bool       // the first key write fails
		starts    []string   // what each start does: printed, silent or failed
	}{
		{"new database", nil, false, []string{printed, silent, silent}},
		{"after keys list", [][]string{{"keys", "list"}}, false, []string{printed, silent}},
		{"after keys list --json", [][]string{{"keys", "list", "--json"}}, false, []string{printed, silent}},
		{"after keys create", [][]string{{"keys", "create", "--name", "ci", "--scopes", "leads:read"}}, false, []string{silent}},
		{"after a failed key write", nil, true, []string{failed, printed, silent}},
	}
	keyRE := regexp.MustCompile(`tg_live_[0-9A-Za-z]+`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "b.db")
			for _, args := range tt.before {
				runOK(t, append(args, "--database", db)...)
			}
			st, err := openStore(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var s store.Store = st
			if tt.failFirst {
				s = &failKeyWrite{Store: st}
			}
			var keys []string
			for i, want := range tt.starts {
				var out bytes.Buffer
				err := bootstrap(t.Context(), s, "default", "localhost:8080", env{getenv: envOf(nil), stdout: &out, stderr: io.Discard})
				key := keyRE.FindString(out.String())
				got := silent
				switch {
				case err != nil:
					got = failed
				case key != "":
					got = printed
					keys = append(keys, key)
				}
				if got != want {
					t.Errorf("start %d: %s (err %v, stdout %q), want %s", i+1, got, err, out.String(), want)
				}
			}
			if len(keys) == 1 {
				acc, err := st.AccountByName(t.Context(), "default")
				if err != nil {
					t.Fatal(err)
				}
				k, err := st.KeyByHash(t.Context(), auth.Hash(keys[0]))
				if err != nil || k.AccountID != acc.ID || !slices.Equal(k.Scopes, []string{auth.ScopeAll}) {
					t.Errorf("printed key: %+v, %v; want a key of account default with scope *", k, err)
				}
			}
		})
	}
}

// TestRedactDSN checks that no password of a database or Redis URL gets
// into a message, whether or not the URL parses.
func TestRedactDSN(t *testing.T) {
	tests := []struct{ name, dsn, want string }{
		{"sqlite path", "data/tollgate.db", "data/tollgate.db"},
		{"redis host:port", "127.0.0.1:6379", "127.0.0.1:6379"},
		{"no password", "postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/test"},
		{"password", "postgres://postgres:Sup3rSecret@127.0.0.1:5432/test", "postgres://postgres:xxxxx@127.0.0.1:5432/test"},
		{"redis password", "redis://:Sup3rSecret@127.0.0.1:6379/0", "redis://:xxxxx@127.0.0.1:6379/0"},
		{"password in the query", "postgres://postgres@127.0.0.1/test?sslmode=disable&password=Sup3rSecret", "postgres://postgres@127.0.0.1/test?sslmode=disable&password=xxxxx"},
		{"sslpassword in the query", "postgres://h/test?sslpassword=Sup3rSecret", "postgres://h/test?sslpassword=xxxxx"},
		{"password that does not parse", "postgres://postgres:Sup3rSecret%zz@127.0.0.1:5432/test", "postgres://xxxxx@127.0.0.1:5432/test"},
		{"password with @ that does not parse", "postgres://u:Sup3r@Secret%zz@h/test", "postgres://xxxxx@h/test"},
		{"URL that does not parse, password in the query", "postgres://u:Sup3rSecret%zz@h/test?password=Sup3rSecret", "postgres://xxxxx@h/test?password=xxxxx"},
		{"redis password that does not parse", "redis://:Sup3rSecret%zz@127.0.0.1:6379/0", "redis://xxxxx@127.0.0.1:6379/0"},
		// Passwords that parse as a port and a path or a fragment.
		{"password like a port and a path", "postgres://user:1234/abc@host/db", "postgres://xxxxx@host/db"},
		{"password like a port and a fragment", "redis://:1234#5@host:6379", "redis://xxxxx@host:6379"},
		{"password like a port and a query", "postgres://user:1234?abc@host/db", "postgres://xxxxx@host/db"},
		{"@ in the query only", "postgres://h/test?application_name=a@b", "postgres://h/test?application_name=a@b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redactDSN(tt.dsn); got != tt.want {
				t.Errorf("redactDSN(%q) = %q, want %q", tt.dsn, got, tt.want)
			}
		})
	}
}

// TestSecretsNotPrinted runs commands that fail on a URL with a password
// and checks that the password is in none of their output.
func TestSecretsNotPrinted(t *testing.T) {
	const secret = "Sup3rSecret"
	tests := []struct {
		name string
		args []string
	}{
		{"database URL that does not parse", []string{"keys", "list", "--database", "postgres://postgres:" + secret + "%zz@127.0.0.1:5432/test"}},
		{"database URL with a bad option", []string{"keys", "list", "--database", "postgres://postgres@127.0.0.1:5432/test?password=" + secret + "&connect_timeout=x"}},
		{"Redis URL that does not parse", []string{"serve", "--addr", "127.0.0.1:0", "--redis", "redis://:" + secret + "%zz@127.0.0.1:6379/0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] == "serve" {
				args = append(args, "--database", filepath.Join(t.TempDir(), "s.db"))
			}
			var out, stderr bytes.Buffer
			err := run(t.Context(), args, envOf(nil), &out, &stderr)
			if err == nil {
				t.Fatalf("tollgate %s: nil error", strings.Join(args, " "))
			}
			if all := out.String() + stderr.String() + err.Error(); strings.Contains(all, secret) {
				t.Errorf("tollgate %s printed the password:\n%s", strings.Join(args, " "), all)
			}
			if !strings.Contains(stderr.String(), "xxxxx") {
				t.Errorf("stderr = %q, want the URL with its password redacted", stderr.String())
			}
		})
	}
}

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), args, envOf(nil), &out, &errb); err != nil {
		t.Fatalf("tollgate %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func TestKeysCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "k.db")
	var created api.CreatedKey
	out := runOK(t, "keys", "create", "--database", db, "--name", "ci", "--scopes", "leads:read,leads:write", "--rate", "600/1m", "--expires", "720h", "--json")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("create --json: %v: %s", err, out)
	}
	if !strings.HasPrefix(created.Secret, "tg_live_") || created.Start == "" || len(created.Scopes) != 2 || created.Rate != "600/1m" || created.ExpiresAt == nil {
		t.Errorf("created = %+v", created)
	}
	out = runOK(t, "keys", "create", "--database", db, "--name", "plain", "--scopes", "*")
	if !regexp.MustCompile(`(?m)^tg_live_[0-9A-Za-z]+$`).MatchString(out) || !strings.Contains(out, "shown once") ||
		!strings.Contains(out, "\nrate:   the server's default (--rate-default)\n") {
		t.Errorf("create (text) = %s", out)
	}
	if out := runOK(t, "keys", "create", "--database", db, "--name", "rated", "--scopes", "*", "--rate", "600/1m"); !strings.Contains(out, "\nrate:   600/1m\n") {
		t.Errorf("create --rate 600/1m (text) = %s", out)
	}
	var list []api.Key
	if err := json.Unmarshal([]byte(runOK(t, "keys", "list", "--database", db, "--json")), &list); err != nil || len(list) != 3 {
		t.Fatalf("list --json = %v %v", list, err)
	}
	if text := runOK(t, "keys", "list", "--database", db); strings.Contains(text, created.Secret) || !strings.Contains(text, created.ID) {
		t.Errorf("list shows the secret or misses the key:\n%s", text)
	}
	// Flags may follow the ID.
	var rotated api.CreatedKey
	if err := json.Unmarshal([]byte(runOK(t, "keys", "rotate", created.ID, "--database", db, "--overlap", "1h", "--json")), &rotated); err != nil {
		t.Fatal(err)
	}
	if rotated.Secret == created.Secret || rotated.PreviousKeyExpiresAt == nil {
		t.Errorf("rotate = %+v", rotated)
	}
	if out := runOK(t, "keys", "revoke", "--database", db, rotated.ID); !strings.Contains(out, "revoked "+rotated.ID) {
		t.Errorf("revoke = %s", out)
	}
	// Another account sees none of these.
	if err := json.Unmarshal([]byte(runOK(t, "keys", "list", "--database", db, "--account", "other", "--json")), &list); err != nil || len(list) != 0 {
		t.Errorf("other account's list = %v %v", list, err)
	}
	var errb bytes.Buffer
	if err := run(context.Background(), []string{"keys", "revoke", "--database", db, "key_nope"}, envOf(nil), io.Discard, &errb); exitCode(err) != 1 {
		t.Errorf("revoke unknown id: exit %d", exitCode(err))
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestServe runs the serve command: the first start prints an admin key
// once, the key works, the envelope comes back for a bad path, the rate
// limit headers are there, and cancelling the context stops it cleanly.
func TestServe(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	addr := freeAddr(t)
	args := []string{"--database", db, "--rate-default", "3/1h", "--ratelimit-headers", "legacy,ietf"}
	out, stop := runServe(t, addr, args...)
	key := regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())
	if key == "" || !strings.Contains(out.String(), "shown ONCE") {
		t.Fatalf("no admin key printed:\n%s", out.String())
	}
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for i := range 4 {
		resp := get("/v1/keys")
		defer resp.Body.Close()
		want := 200
		if i == 3 {
			want = 429
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d, want %d", i+1, resp.StatusCode, want)
		}
		if resp.Header.Get("X-RateLimit-Limit") != "3" || resp.Header.Get("RateLimit-Policy") != `"default";q=3;w=3600` {
			t.Errorf("headers: %v", resp.Header)
		}
		if i == 3 {
			e := apierror.Decode(resp)
			if ra := resp.Header.Get("Retry-After"); ra == "" || ra != fmt.Sprint(e.Details["retry_after"]) {
				t.Errorf("Retry-After %q, details.retry_after %v", ra, e.Details["retry_after"])
			}
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	// The second start on the same database prints no key.
	out, stop = runServe(t, addr, args...)
	defer stop()
	if strings.Contains(out.String(), "tg_live_") {
		t.Errorf("second start printed a key:\n%s", out.String())
	}
}

// TestRaiseProcs checks that serve runs with at least two Ps unless the
// GOMAXPROCS environment variable says otherwise. It changes the test
// binary's GOMAXPROCS, so it does not run in parallel and restores it.
func TestRaiseProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	cases := []struct {
		name       string
		procs      int
		env        string
		wantProcs  int
		wantRaised bool
	}{
		{"one P is raised", 1, "", minProcs, true},
		{"the environment wins", 1, "1", 1, false},
		{"a value the runtime ignores does not count", 1, "abc", minProcs, true},
		{"more are kept", 3, "", 3, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runtime.GOMAXPROCS(c.procs)
			was, raised := raiseProcs(func(k string) string {
				if k == "GOMAXPROCS" {
					return c.env
				}
				return ""
			})
			if was != c.procs || raised != c.wantRaised || runtime.GOMAXPROCS(0) != c.wantProcs {
				t.Fatalf("raiseProcs = (%d, %v), GOMAXPROCS now %d; want (%d, %v), %d",
					was, raised, runtime.GOMAXPROCS(0), c.procs, c.wantRaised, c.wantProcs)
			}
		})
	}
}
