package main

import (
	"context"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// TestShutdownFlushesKeyUseOfDrainedRequests stops the server while a
// request is in flight but not yet past Auth: it authenticates during the
// drain, and its key's last_used_at is written at shutdown, as
// docs/operations.md promises (the flush comes after the drain).
func TestShutdownFlushesKeyUseOfDrainedRequests(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	logs := &signalWriter{want: "shutting down", seen: make(chan struct{})}
	out := &testenv.Buffer{}
	e := env{getenv: envOf(nil), stdout: out, stderr: logs}
	c, err := parseServe(e, []string{"--addr", "127.0.0.1:0", "--database", db})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := start(ctx, e, c, 0, false, startOptions{bootstrap: func(st store.Store, addr string) error {
		return bootstrap(ctx, st, c.account, addr, e)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	key := regexp.MustCompile(`tg_live_[0-9A-Za-z]+`).FindString(out.String())
	entered, release := make(chan struct{}), make(chan struct{})
	authed := middleware.Auth(s.verifier, s.guard)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	s.srv.Handle("GET /hold", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		authed.ServeHTTP(w, r)
	}))
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, nil) }()
	status := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.l.Addr().String()+"/hold", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	<-entered
	cancel()
	<-logs.seen // the drain began
	close(release)
	if got := <-status; got != http.StatusNoContent {
		t.Fatalf("drained request: status %d, want 204", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	acc, _, err := s.st.EnsureAccount(context.Background(), c.account)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := s.st.ListKeys(context.Background(), acc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].LastUsedAt == nil {
		t.Fatalf("last_used_at of the key used during the drain was not flushed: %+v", keys)
	}
}
