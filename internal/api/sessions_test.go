package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
)

// checked is env.do with the admin key, checking the response against the
// OpenAPI document.
func (e *env) checked(method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	hdr = append(bearer(e.admin), hdr...)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	loadContract(e.t).checkRecorder(e.t, r, w)
	return w
}

// fullSession is a session with every member set.
const fullSession = `{"sessionExternalId":"full","title":"T","source":"S","model":"M","status":"active",
	"startedAt":"2026-11-22T09:00:00Z","endedAt":"2026-11-22T09:30:00Z","tokens":10,"metadata":{"a":{"b":[1,2]}}}`

func TestSessionClock(t *testing.T) {
	e := newEnv(t, nil)
	created := body[api.Session](t, e.checked("POST", "/v1/sessions", `{"sessionExternalId":"c"}`))
	now := e.clock.Now()
	if !created.StartedAt.Equal(now) || !created.CreatedAt.Equal(now) || !created.UpdatedAt.Equal(now) {
		t.Errorf("startedAt %v createdAt %v updatedAt %v, want all %v", created.StartedAt, created.CreatedAt, created.UpdatedAt, now)
	}
	e.clock.Add(time.Minute)
	updated := body[api.Session](t, e.checked("PATCH", "/v1/sessions/"+created.ID, `{"tokens":1}`))
	if !updated.UpdatedAt.Equal(now.Add(time.Minute)) || !updated.CreatedAt.Equal(now) || !updated.StartedAt.Equal(now) {
		t.Errorf("after PATCH: updatedAt %v createdAt %v startedAt %v", updated.UpdatedAt, updated.CreatedAt, updated.StartedAt)
	}
}

func TestSessionPatch(t *testing.T) {
	e := newEnv(t, nil)
	started := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	ended := started.Add(30 * time.Minute)
	base := api.Session{SessionExternalID: "full", Title: "T", Source: "S", Model: "M", Status: "active",
		StartedAt: started, EndedAt: &ended, Tokens: 10, Metadata: json.RawMessage(`{"a":{"b":[1,2]}}`)}
	later := started.Add(2 * time.Hour)
	tests := []struct {
		name  string
		patch string
		want  func(s *api.Session)
	}{
		{"empty", `{}`, func(s *api.Session) {}},
		{"title only", `{"title":"New"}`, func(s *api.Session) { s.Title = "New" }},
		{"nulls clear", `{"title":null,"source":null,"model":null,"endedAt":null,"metadata":null}`, func(s *api.Session) {
			s.Title, s.Source, s.Model, s.EndedAt, s.Metadata = "", "", "", nil, json.RawMessage(`{}`)
		}},
		{"metadata replaced, not merged", `{"metadata":{"c":true}}`, func(s *api.Session) { s.Metadata = json.RawMessage(`{"c":true}`) }},
		{"metadata compacted", "{\"metadata\":{ \"c\" :\n [ 1 , 2 ] }}", func(s *api.Session) { s.Metadata = json.RawMessage(`{"c":[1,2]}`) }},
		{"new external id", `{"sessionExternalId":"other"}`, func(s *api.Session) { s.SessionExternalID = "other" }},
		{"times", `{"startedAt":"2026-11-22T10:00:00+01:00","endedAt":"2026-11-22T11:00:00Z"}`, func(s *api.Session) {
			s.StartedAt, s.EndedAt = started, &later
		}},
		// RFC 3339 lets T and Z be lower case.
		{"times in lower case", `{"startedAt":"2026-11-22t10:00:00+01:00","endedAt":"2026-11-22t11:00:00z"}`, func(s *api.Session) {
			s.StartedAt, s.EndedAt = started, &later
		}},
		{"complete", `{"status":"completed","tokens":0}`, func(s *api.Session) { s.Status, s.Tokens = "completed", 0 }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := strings.Replace(fullSession, `"full"`, `"full`+string(rune('a'+i))+`"`, 1)
			created := body[api.Session](t, e.checked("POST", "/v1/sessions", full))
			w := e.checked("PATCH", "/v1/sessions/"+created.ID, tt.patch)
			if w.Code != 200 {
				t.Fatalf("PATCH = %d: %s", w.Code, w.Body)
			}
			want := base
			want.SessionExternalID = created.SessionExternalID
			tt.want(&want)
			got := body[api.Session](t, w)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.Session{}, "ID", "CreatedAt", "UpdatedAt")); diff != "" {
				t.Errorf("PATCH %s (-want +got):\n%s", tt.patch, diff)
			}
			if stored := body[api.Session](t, e.checked("GET", "/v1/sessions/"+created.ID, "")); !cmp.Equal(stored, got) {
				t.Errorf("GET after PATCH = %+v, want %+v", stored, got)
			}
		})
	}
}

func TestSessionTransitions(t *testing.T) {
	e := newEnv(t, nil)
	statuses := []string{"active", "completed", "failed"}
	n := 0
	for _, from := range statuses {
		for _, to := range statuses {
			t.Run(from+" to "+to, func(t *testing.T) {
				n++
				w := e.checked("POST", "/v1/sessions", `{"sessionExternalId":"t`+string(rune('a'+n))+`","status":"`+from+`"}`)
				id := body[api.Session](t, w).ID
				w = e.checked("PATCH", "/v1/sessions/"+id, `{"status":"`+to+`"}`)
				wantErr := to == "active" && from != "active"
				if wantErr {
					got := decode(t, w)
					if w.Code != 422 || got.Code != apierror.Unprocessable || got.Details["field"] != "status" {
						t.Errorf("%s → %s = %d %s", from, to, w.Code, w.Body)
					}
					return
				}
				if w.Code != 200 || body[api.Session](t, w).Status != to {
					t.Errorf("%s → %s = %d %s", from, to, w.Code, w.Body)
				}
			})
		}
	}
}

func TestSessionBadTypes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"tokens as string", `{"sessionExternalId":"x","tokens":"5"}`, "tokens"},
		{"tokens fractional", `{"sessionExternalId":"x","tokens":1.5}`, "tokens"},
		{"title as number", `{"sessionExternalId":"x","title":5}`, "title"},
		{"external id as number", `{"sessionExternalId":5}`, "sessionExternalId"},
		{"startedAt as number", `{"sessionExternalId":"x","startedAt":0}`, "startedAt"},
		{"duplicate metadata key", `{"sessionExternalId":"x","metadata":{"a":1,"a":2}}`, "metadata.a"},
		{"unknown member", `{"sessionExternalId":"x","owner":"me"}`, "owner"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.checked("POST", "/v1/sessions", tt.body)
			got := decode(t, w)
			if w.Code != 400 || got.Code != apierror.InvalidRequest || got.Details["field"] != tt.field {
				t.Errorf("%s = %d %s, want 400 INVALID_REQUEST field %s", tt.body, w.Code, w.Body, tt.field)
			}
		})
	}
	// An integer too large for its field breaks a range rule: 400
	// VALIDATION_ERROR, like a negative one, not a wrong type.
	for _, tt := range []struct{ name, tokens, reason string }{
		{"too big", "9223372036854775808", "Must be at most 9223372036854775807"},
		{"far too big", "99999999999999999999", "Must be at most 9223372036854775807"},
		{"negative", "-1", "Must be an integer ≥ 0"},
		{"far too small", "-9223372036854775809", "Must be an integer ≥ 0"},
	} {
		t.Run("tokens "+tt.name, func(t *testing.T) {
			w := e.checked("POST", "/v1/sessions", `{"sessionExternalId":"x","tokens":`+tt.tokens+`}`)
			got := decode(t, w)
			if w.Code != 400 || got.Code != apierror.ValidationError || got.Details["field"] != "tokens" || got.Details["reason"] != tt.reason {
				t.Errorf("tokens %s = %d %s, want 400 VALIDATION_ERROR field tokens, reason %q", tt.tokens, w.Code, w.Body, tt.reason)
			}
		})
	}
	// It is a member's own rule: checked after the required members, and
	// reported with the other bad members.
	t.Run("tokens too big, in the validation order", func(t *testing.T) {
		w := e.checked("POST", "/v1/sessions", `{"tokens":99999999999999999999}`)
		if got := decode(t, w); got.Code != apierror.MissingField {
			t.Errorf("without sessionExternalId: %d %s, want MISSING_FIELD first", w.Code, w.Body)
		}
		w = e.checked("POST", "/v1/sessions", `{"sessionExternalId":"x","status":"bad","tokens":99999999999999999999}`)
		got := decode(t, w)
		errs, _ := got.Details["errors"].([]any)
		if got.Code != apierror.ValidationError || len(errs) != 2 {
			t.Errorf("with a bad status too: %d %s, want VALIDATION_ERROR listing both", w.Code, w.Body)
		}
	})
}

// TestSessionListIsolation: a cursor is only a position; one naming
// another account's session shows nothing of that account.
func TestSessionListIsolation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other, _, err := e.st.EnsureAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := api.CreateKey(ctx, e.st, other.ID, api.KeyRequest{Name: "b", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, x := range []string{"a", "b", "c"} {
		ours = append(ours, body[api.Session](t, e.checked("POST", "/v1/sessions", `{"sessionExternalId":"`+x+`"}`)).ID)
	}
	w := e.do("POST", "/v1/sessions", `{"sessionExternalId":"theirs"}`, bearer(theirs.Secret)...)
	theirID := body[api.Session](t, w).ID

	cursor := base64.RawURLEncoding.EncodeToString([]byte(ours[0]))
	w = e.do("GET", "/v1/sessions?cursor="+cursor, "", bearer(theirs.Secret)...)
	got := body[struct {
		Data       []api.Session `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}](t, w)
	if len(got.Data) != 1 || got.Data[0].ID != theirID || got.NextCursor != nil {
		t.Errorf("their list after our cursor = %s", w.Body)
	}
	w = e.checked("GET", "/v1/sessions?limit=2", "")
	page := body[struct {
		Data       []api.Session `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}](t, w)
	if len(page.Data) != 2 || page.NextCursor == nil {
		t.Fatalf("first page = %s", w.Body)
	}
	if strings.Contains(*page.NextCursor, "ses_") {
		t.Errorf("cursor %q shows the id in the clear", *page.NextCursor)
	}
	w = e.checked("GET", "/v1/sessions?limit=2&cursor="+*page.NextCursor, "")
	page = body[struct {
		Data       []api.Session `json:"data"`
		NextCursor *string       `json:"next_cursor"`
	}](t, w)
	if len(page.Data) != 1 || page.Data[0].ID != ours[2] || page.NextCursor != nil {
		t.Errorf("second page = %s", w.Body)
	}
}

func TestEmptyLists(t *testing.T) {
	e := newEnv(t, nil)
	for _, p := range []string{"/v1/sessions", "/v1/leads"} {
		w := e.checked("GET", p, "")
		if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"data":[],"next_cursor":null}` {
			t.Errorf("GET %s = %d %s", p, w.Code, w.Body)
		}
	}
}

// TestSessionMetadataRoundTrip: metadata comes back byte for byte as it
// was stored ("<", ">" and "&" unescaped), so a client that sends back
// what it read, near the size limit, passes the same size rule.
func TestSessionMetadataRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	big := strings.Repeat("<&>", 5000) // 15,000 bytes as written; 90,000 escaped as \u003c…
	w := e.checked("POST", "/v1/sessions", `{"sessionExternalId":"rt","metadata":{"x":"`+big+`"}}`)
	if w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	var created struct {
		ID       string          `json:"id"`
		Metadata json.RawMessage `json:"metadata"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	if want := `{"x":"` + big + `"}`; string(created.Metadata) != want {
		t.Errorf("metadata came back as %.60s…, want it as sent", created.Metadata)
	}
	if w := e.checked("PATCH", "/v1/sessions/"+created.ID, `{"metadata":`+string(created.Metadata)+`}`); w.Code != 200 {
		t.Errorf("PATCH with the metadata as read: %d %.300s", w.Code, w.Body)
	}
}
