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
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
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
	}{
		{"no command", nil, nil, 2},
		{"unknown command", []string{"frobnicate"}, nil, 2},
		{"help", []string{"help"}, nil, 0},
		{"serve bad flag", []string{"serve", "--nope"}, nil, 2},
		{"serve bad rate", []string{"serve", "--rate-default", "lots"}, nil, 2},
		{"serve bad env", []string{"serve"}, map[string]string{"TOLLGATE_BODY_LIMIT": "big"}, 2},
		{"serve bad fail policy", []string{"serve", "--rate-fail", "maybe"}, nil, 2},
		{"serve help", []string{"serve", "-h"}, nil, 2},
		{"keys no sub", []string{"keys"}, nil, 2},
		{"keys create without scopes", []string{"keys", "create", "--name", "x", "--database", ":memory:"}, nil, 2},
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
		})
	}
	if exitCode(flag.ErrHelp) != 2 || exitCode(errors.New("x")) != 1 || exitCode(nil) != 0 {
		t.Errorf("exitCode mapping")
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
	if !regexp.MustCompile(`(?m)^tg_live_[0-9A-Za-z]+$`).MatchString(out) || !strings.Contains(out, "shown once") {
		t.Errorf("create (text) = %s", out)
	}
	var list []api.Key
	if err := json.Unmarshal([]byte(runOK(t, "keys", "list", "--database", db, "--json")), &list); err != nil || len(list) != 2 {
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
	start := func() (context.CancelFunc, chan error, *testenv.Buffer) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &testenv.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"serve", "--addr", addr, "--database", db, "--rate-default", "3/1h", "--ratelimit-headers", "legacy,ietf"}, envOf(nil), out, io.Discard)
		}()
		for i := 0; ; i++ {
			if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
				resp.Body.Close()
				break
			}
			if i > 500 {
				t.Fatal("server did not start")
			}
			select {
			case err := <-done:
				t.Fatalf("serve exited: %v", err)
			case <-time.After(10 * time.Millisecond):
			}
		}
		return cancel, done, out
	}
	cancel, done, out := start()
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
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	// The second start on the same database prints no key.
	cancel, done, out = start()
	defer func() { cancel(); <-done }()
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
