package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/client"
)

// exchange is one expected request and its canned answer.
type exchange struct {
	method, path, query string
	body                string // expected JSON body, compared as JSON; "" = none
	status              int
	answer              string
}

// api serves exchanges in order and fails the test on any mismatch.
func api(t *testing.T, want ...exchange) *httptest.Server {
	t.Helper()
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n >= len(want) {
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			w.WriteHeader(500)
			return
		}
		x := want[n]
		n++
		if r.Method != x.method || r.URL.Path != x.path || r.URL.RawQuery != x.query {
			t.Errorf("request %d = %s %s?%s, want %s %s?%s", n, r.Method, r.URL.Path, r.URL.RawQuery, x.method, x.path, x.query)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer tg_test_key" {
			t.Errorf("request %d Authorization = %q, want Bearer tg_test_key", n, got)
		}
		body, _ := io.ReadAll(r.Body)
		if x.body != "" {
			var got, exp any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Errorf("request %d body %q: %v", n, body, err)
			}
			_ = json.Unmarshal([]byte(x.body), &exp)
			if diff := cmp.Diff(exp, got); diff != "" {
				t.Errorf("request %d body mismatch (-want +got):\n%s", n, diff)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("request %d Content-Type = %q", n, ct)
			}
		} else if len(body) != 0 {
			t.Errorf("request %d body = %q, want none", n, body)
		}
		if x.status >= 400 {
			var e struct {
				Error struct {
					Code    apierror.Code `json:"code"`
					Message string        `json:"message"`
				} `json:"error"`
			}
			_ = json.Unmarshal([]byte(x.answer), &e)
			apierror.Write(w, r, apierror.New(e.Error.Code, e.Error.Message))
			return
		}
		if x.answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(x.status)
		io.WriteString(w, x.answer)
	}))
	t.Cleanup(func() {
		srv.Close()
		if n != len(want) {
			t.Errorf("server got %d requests, want %d", n, len(want))
		}
	})
	return srv
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestKeys(t *testing.T) {
	created := `{"id":"key_1","key":"tg_test_secret","name":"ci","start":"tg_test_abcd","scopes":["leads:read"],"rate":"600/1m","created_at":"2026-01-01T00:00:00Z","expires_at":"2027-01-01T00:00:00Z"}`
	rotated := `{"id":"key_1","key":"tg_test_new","name":"ci","start":"tg_test_wxyz","scopes":["leads:read"],"rate":"600/1m","created_at":"2026-01-02T00:00:00Z","expires_at":null,"previous_key_expires_at":"2026-01-03T00:00:00Z"}`
	one := `{"id":"key_1","name":"ci","start":"tg_test_abcd","scopes":["leads:read"],"rate":"600/1m","created_at":"2026-01-01T00:00:00Z","last_used_at":"2026-01-01T10:00:00Z","expires_at":null,"revoked_at":null}`
	srv := api(t,
		exchange{"POST", "/v1/keys", "", `{"name":"ci","scopes":["leads:read"],"expires_at":"2027-01-01T00:00:00Z","rate":"600/1m"}`, 201, created},
		exchange{"GET", "/v1/keys/key_1", "", "", 200, one},
		exchange{"GET", "/v1/keys", "limit=1", "", 200, `{"data":[` + one + `],"next_cursor":"c2"}`},
		exchange{"GET", "/v1/keys", "cursor=c2&limit=1", "", 200, `{"data":[],"next_cursor":null}`},
		exchange{"POST", "/v1/keys/key_1/rotate", "", `{"overlap":"24h"}`, 201, rotated},
		exchange{"DELETE", "/v1/keys/key_1", "", "", 204, ""},
		exchange{"GET", "/v1/keys/key_2", "", "", 404, `{"error":{"code":"NOT_FOUND","message":"Key not found"}}`},
	)
	c := newClient(t, srv.URL, newFakeClock())
	ctx := context.Background()

	exp := ts("2027-01-01T00:00:00Z")
	got, err := c.Keys.Create(ctx, client.KeyCreate{Name: "ci", Scopes: []string{"leads:read"}, ExpiresAt: &exp, Rate: "600/1m"})
	if err != nil {
		t.Fatal(err)
	}
	want := &client.CreatedKey{ID: "key_1", Key: "tg_test_secret", Name: "ci", Start: "tg_test_abcd", Scopes: []string{"leads:read"},
		Rate: "600/1m", CreatedAt: ts("2026-01-01T00:00:00Z"), ExpiresAt: &exp}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Create mismatch (-want +got):\n%s", diff)
	}

	k, err := c.Keys.Get(ctx, "key_1")
	if err != nil {
		t.Fatal(err)
	}
	used := ts("2026-01-01T10:00:00Z")
	wantKey := client.Key{ID: "key_1", Name: "ci", Start: "tg_test_abcd", Scopes: []string{"leads:read"}, Rate: "600/1m",
		CreatedAt: ts("2026-01-01T00:00:00Z"), LastUsedAt: &used}
	if diff := cmp.Diff(&wantKey, k); diff != "" {
		t.Errorf("Get mismatch (-want +got):\n%s", diff)
	}

	var keys []client.Key
	for k, err := range c.Keys.List(ctx, client.KeyListOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if diff := cmp.Diff([]client.Key{wantKey}, keys); diff != "" {
		t.Errorf("List mismatch (-want +got):\n%s", diff)
	}

	r, err := c.Keys.Rotate(ctx, "key_1", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	prev := ts("2026-01-03T00:00:00Z")
	if r.Key != "tg_test_new" || r.PreviousKeyExpiresAt == nil || !r.PreviousKeyExpiresAt.Equal(prev) || r.ExpiresAt != nil {
		t.Errorf("Rotate = %+v, want the new secret and previous_key_expires_at %v", r, prev)
	}
	if err := c.Keys.Revoke(ctx, "key_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Keys.Get(ctx, "key_2"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get(key_2) = %v, want ErrNotFound", err)
	}
	if _, err := c.Keys.Get(ctx, ""); err == nil || err.Error() != "client: get key: empty id" {
		t.Errorf("Get(\"\") = %v, want client: get key: empty id", err)
	}
}

func TestSessions(t *testing.T) {
	s1 := `{"id":"ses_1","sessionExternalId":"ext-1","title":"T","source":"cli","model":"m","status":"active","startedAt":"2026-01-01T00:00:00Z","endedAt":null,"tokens":12,"metadata":{"k":"v"},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`
	s2 := `{"id":"ses_2","status":"completed","tokens":0,"metadata":{},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-02T00:00:00Z"}`
	srv := api(t,
		exchange{"POST", "/v1/sessions", "", `{"sessionExternalId":"ext-1","title":"T","source":"cli","model":"m","tokens":12,"metadata":{"k":"v"}}`, 201, s1},
		exchange{"GET", "/v1/sessions/ses_1", "", "", 200, s1},
		exchange{"PATCH", "/v1/sessions/ses_1", "", `{"status":"completed","tokens":40}`, 200, s1},
		exchange{"GET", "/v1/sessions", "limit=1&source=cli&status=active", "", 200, `{"data":[` + s1 + `],"next_cursor":"n1"}`},
		exchange{"GET", "/v1/sessions", "cursor=n1&limit=1&source=cli&status=active", "", 200, `{"data":[` + s2 + `],"next_cursor":"n2"}`},
		exchange{"DELETE", "/v1/sessions/ses_1", "", "", 204, ""},
	)
	c := newClient(t, srv.URL, newFakeClock())
	ctx := context.Background()
	got, err := c.Sessions.Create(ctx, client.SessionCreate{SessionExternalID: "ext-1", Title: "T", Source: "cli", Model: "m", Tokens: 12, Metadata: map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	start := ts("2026-01-01T00:00:00Z")
	want := &client.Session{ID: "ses_1", SessionExternalID: "ext-1", Title: "T", Source: "cli", Model: "m", Status: client.SessionActive,
		StartedAt: &start, Tokens: 12, Metadata: map[string]any{"k": "v"}, CreatedAt: start, UpdatedAt: start}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Create mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.Sessions.Get(ctx, "ses_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Sessions.Update(ctx, "ses_1", client.SessionUpdate{Status: client.Ptr(client.SessionCompleted), Tokens: client.Ptr[int64](40)}); err != nil {
		t.Fatal(err)
	}
	// Stop after two items: the third page is never fetched.
	var ids []string
	for s, err := range c.Sessions.List(ctx, client.SessionListOptions{Limit: 1, Status: client.SessionActive, Source: "cli"}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
		if len(ids) == 2 {
			break
		}
	}
	if diff := cmp.Diff([]string{"ses_1", "ses_2"}, ids); diff != "" {
		t.Errorf("List ids mismatch (-want +got):\n%s", diff)
	}
	if err := c.Sessions.Delete(ctx, "ses_1"); err != nil {
		t.Fatal(err)
	}
}

func TestLeads(t *testing.T) {
	l2 := `{"id":"lead_2","name":"Bob","status":"lost","createdAt":"2026-01-02T03:04:05Z","updatedAt":"2026-01-02T03:04:05Z"}`
	srv := api(t,
		exchange{"POST", "/v1/leads", "", `{"name":"Ada","email":"ada@example.com","phone":"+100","company":"AE","notes":"n","status":"new"}`, 201, leadJSON},
		exchange{"GET", "/v1/leads/lead_1", "", "", 200, leadJSON},
		exchange{"PATCH", "/v1/leads/lead_1", "", `{"notes":"","status":"qualified"}`, 200, leadJSON},
		exchange{"GET", "/v1/leads", "status=new", "", 200, `{"data":[` + leadJSON + `],"next_cursor":"x"}`},
		exchange{"GET", "/v1/leads", "cursor=x&status=new", "", 200, `{"data":[` + l2 + `],"next_cursor":null}`},
		exchange{"DELETE", "/v1/leads/lead_1", "", "", 204, ""},
		exchange{"POST", "/v1/leads", "", `{"name":"Ada"}`, 409, `{"error":{"code":"ALREADY_EXISTS","message":"A lead with this phone exists."}}`},
		exchange{"GET", "/v1/leads", "", "", 200, `{"data":[` + leadJSON + `],"next_cursor":"same"}`},
		exchange{"GET", "/v1/leads", "cursor=same", "", 200, `{"data":[],"next_cursor":"same"}`},
	)
	c := newClient(t, srv.URL, newFakeClock())
	ctx := context.Background()
	got, err := c.Leads.Create(ctx, client.LeadCreate{Name: "Ada", Email: "ada@example.com", Phone: "+100", Company: "AE", Notes: "n", Status: client.LeadNew})
	if err != nil {
		t.Fatal(err)
	}
	at := ts("2026-01-02T03:04:05Z")
	want := &client.Lead{ID: "lead_1", Name: "Ada", Status: client.LeadNew, CreatedAt: at, UpdatedAt: at}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Create mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.Leads.Get(ctx, "lead_1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leads.Update(ctx, "lead_1", client.LeadUpdate{Notes: client.Ptr(""), Status: client.Ptr(client.LeadQualified)}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for l, err := range c.Leads.List(ctx, client.LeadListOptions{Status: client.LeadNew}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, l.Name)
	}
	if diff := cmp.Diff([]string{"Ada", "Bob"}, names); diff != "" {
		t.Errorf("List names mismatch (-want +got):\n%s", diff)
	}
	if err := c.Leads.Delete(ctx, "lead_1"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Leads.Create(ctx, client.LeadCreate{Name: "Ada"})
	if !errors.Is(err, client.ErrAlreadyExists) || errors.Is(err, client.ErrConflict) {
		t.Errorf("Create = %v, want ErrAlreadyExists only", err)
	}
	var last error
	for _, err := range c.Leads.List(ctx, client.LeadListOptions{}) {
		last = err
	}
	if last == nil {
		t.Errorf("List over a repeated cursor ended without an error")
	}
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x", "http://", "http://x/?q=1"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) = nil error, want one", u)
		}
	}
	c, err := client.New("http://x/prefix/")
	if err != nil || c == nil {
		t.Errorf("New with a path prefix = %v", err)
	}
}

func TestBasePathPrefixAndUserAgent(t *testing.T) {
	var path, ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path, ua = r.URL.EscapedPath(), r.UserAgent()
		io.WriteString(w, leadJSON)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL+"/api/", client.WithUserAgent("me/1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leads.Get(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if path != "/api/v1/leads/a%2Fb" || ua != "me/1" {
		t.Errorf("path, User-Agent = %q, %q; want %s (escaped id), me/1", path, ua, "/api/v1/leads/a%2Fb")
	}
}

func TestFailuresAreClientErrors(t *testing.T) {
	answer := func(contentType, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			io.WriteString(w, body)
		}
	}
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	tests := []struct {
		name      string
		step      http.HandlerFunc
		call      func(c *client.Client) error
		wantMsg   string
		wantCause any // a pointer to an error type the chain must hold, if set
	}{
		{
			name: "2xx with an HTML body",
			step: answer("text/html", "<html>ok</html>"),
			call: func(c *client.Client) error {
				_, err := c.Leads.Get(context.Background(), "lead_1")
				return err
			},
			wantMsg:   "client: get lead: decode response: invalid character '<' looking for beginning of value",
			wantCause: &syntaxErr,
		},
		{
			name: "2xx with JSON of the wrong shape",
			step: answer("application/json", `["not","a","lead"]`),
			call: func(c *client.Client) error {
				_, err := c.Leads.Create(context.Background(), client.LeadCreate{Name: "Ada"})
				return err
			},
			wantMsg:   "client: create lead: decode response: json: cannot unmarshal array into Go value of type client.Lead",
			wantCause: &typeErr,
		},
		{
			name:    "empty id",
			step:    answer("application/json", leadJSON),
			call:    func(c *client.Client) error { return c.Leads.Delete(context.Background(), "") },
			wantMsg: "client: delete lead: empty id",
		},
		{
			name: "the same cursor again",
			step: answer("application/json", `{"data":[],"next_cursor":"c1"}`),
			call: func(c *client.Client) error {
				for _, err := range c.Leads.List(context.Background(), client.LeadListOptions{Cursor: "c1"}) {
					if err != nil {
						return err
					}
				}
				return nil
			},
			wantMsg: `client: list leads: server returned the same cursor "c1" again`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			srv := newScript(t, tt.step)
			err := tt.call(newClient(t, srv.URL, clk))
			var ce *client.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v (%T), want a *client.Error", err, err)
			}
			if got := err.Error(); got != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", got, tt.wantMsg)
			}
			if ce.APIError() != nil {
				t.Errorf("APIError() = %v, want nil", ce.APIError())
			}
			if tt.wantCause != nil && !errors.As(errors.Unwrap(err), tt.wantCause) {
				t.Errorf("errors.Unwrap(%v) = %v, want a chain holding %T", err, errors.Unwrap(err), tt.wantCause)
			}
		})
	}
}

// TestListStopsOnACursorCycle: a server whose cursors come back round (a
// page naming the cursor of an earlier page, not only its own) would make
// List loop for ever, yielding the same items again and again; List ends
// with an error the first time a cursor repeats.
func TestListStopsOnACursorCycle(t *testing.T) {
	tests := []struct {
		name    string
		next    map[string]string // cursor → next_cursor
		wantIDs []string
		wantMsg string
	}{
		{"own cursor", map[string]string{"": "a", "a": "a"}, []string{"lead_", "lead_a"},
			`client: list leads: server returned the same cursor "a" again`},
		{"back to an earlier page", map[string]string{"": "a", "a": "b", "b": "a"}, []string{"lead_", "lead_a", "lead_b"},
			`client: list leads: server returned the same cursor "a" again`},
		{"back to the start", map[string]string{"": "a", "a": "b", "b": "c", "c": "a"}, []string{"lead_", "lead_a", "lead_b", "lead_c"},
			`client: list leads: server returned the same cursor "a" again`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScript(t, func(w http.ResponseWriter, r *http.Request) {
				cur := r.URL.Query().Get("cursor")
				w.Header().Set("Content-Type", "application/json")
				lead := strings.Replace(leadJSON, `"lead_1"`, `"lead_`+cur+`"`, 1)
				fmt.Fprintf(w, `{"data":[%s],"next_cursor":%q}`, lead, tt.next[cur])
			})
			c := newClient(t, srv.URL, newFakeClock())
			var ids []string
			var last error
			for l, err := range c.Leads.List(context.Background(), client.LeadListOptions{}) {
				if err != nil {
					last = err
					break
				}
				ids = append(ids, l.ID)
				if len(ids) > 20 {
					break
				}
			}
			if diff := cmp.Diff(tt.wantIDs, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if last == nil || last.Error() != tt.wantMsg {
				t.Errorf("last error = %v, want %s", last, tt.wantMsg)
			}
		})
	}
}

// TestSessionUpdateBody: what a SessionUpdate sends. A member is absent
// unless its field is set; ClearEndedAt is "endedAt": null; a non-nil
// empty Metadata is {} (the server's reset), not left out.
func TestSessionUpdateBody(t *testing.T) {
	end := ts("2099-01-01T00:00:00Z")
	tests := []struct {
		name   string
		update client.SessionUpdate
		want   string
	}{
		{"nothing", client.SessionUpdate{}, `{}`},
		{"endedAt", client.SessionUpdate{EndedAt: &end}, `{"endedAt":"2099-01-01T00:00:00Z"}`},
		{"clear endedAt", client.SessionUpdate{ClearEndedAt: true}, `{"endedAt":null}`},
		{"empty metadata", client.SessionUpdate{Metadata: map[string]any{}}, `{"metadata":{}}`},
		{"metadata", client.SessionUpdate{Metadata: map[string]any{"k": "v"}}, `{"metadata":{"k":"v"}}`},
		{"others", client.SessionUpdate{Title: client.Ptr(""), Status: client.Ptr(client.SessionFailed), Tokens: client.Ptr[int64](0)},
			`{"title":"","status":"failed","tokens":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := api(t, exchange{"PATCH", "/v1/sessions/ses_1", "", tt.want, 200, `{"id":"ses_1","status":"failed","tokens":0,"metadata":{},"createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`})
			if _, err := newClient(t, srv.URL, newFakeClock()).Sessions.Update(context.Background(), "ses_1", tt.update); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("EndedAt and ClearEndedAt", func(t *testing.T) {
		srv := api(t)
		_, err := newClient(t, srv.URL, newFakeClock()).Sessions.Update(context.Background(), "ses_1", client.SessionUpdate{EndedAt: &end, ClearEndedAt: true})
		var ce *client.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "both EndedAt and ClearEndedAt are set") {
			t.Errorf("Update = %v, want a *client.Error naming both fields", err)
		}
	})
}
