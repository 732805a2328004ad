package api_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/api"
	"github.com/tollgate-dev/tollgate/internal/server"
	"github.com/tollgate-dev/tollgate/store"
)

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  string
		valid bool
	}{
		{"e164", "+14155550123", "+14155550123", true},
		{"spaces", "+1 415 555 0123", "+14155550123", true},
		{"dashes dots parens", "+1 (415) 555-01.23", "+14155550123", true},
		{"leading 00", "0044 20 7946 0958", "+442079460958", true},
		{"8 digits", "+12345678", "+12345678", true},
		{"15 digits", "+123456789012345", "+123456789012345", true},
		{"7 digits", "+1234567", "", false},
		{"16 digits", "+1234567890123456", "", false},
		{"no plus", "14155550123", "", false},
		{"national", "020 7946 0958", "", false},
		{"country code 0", "+0123456789", "", false},
		{"000 prefix", "000123456789", "", false},
		{"letters", "+1415555CALL", "", false},
		{"two plus", "++14155550123", "", false},
		{"plus inside", "+1415+5550123", "", false},
		{"tab is not stripped", "+1415\t5550123", "", false},
		{"slash", "+1/415/5550123", "", false},
		{"arabic digits", "+١٤١٥٥٥٥٠١٢٣", "", false},
		{"empty", "", "", false},
		{"only plus", "+", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := api.NormalizePhone(tt.in)
			if got != tt.want || ok != tt.valid {
				t.Errorf("NormalizePhone(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.valid)
			}
		})
	}
}

func TestValidEmail(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"plain", "ada@example.com", true},
		{"plus tag", "ada+crm@example.co.uk", true},
		{"dots in local part", "ada.lovelace@example.com", true},
		{"hyphenated domain", "ada@ex-ample.com", true},
		{"unicode", "ädä@exämple.de", true},
		{"no at", "ada.example.com", false},
		{"no domain dot", "ada@localhost", false},
		{"display name", "Ada <ada@example.com>", false},
		{"leading space", " ada@example.com", false},
		{"trailing space", "ada@example.com ", false},
		{"two ats", "ada@@example.com", false},
		{"double dot domain", "ada@example..com", false},
		{"trailing dot domain", "ada@example.com.", false},
		{"label starts with hyphen", "ada@-example.com", false},
		{"label ends with hyphen", "ada@example-.com", false},
		{"underscore in domain", "ada@ex_ample.com", false},
		{"ip literal", "ada@[192.0.2.1]", false},
		{"combining mark in domain", "ada@exa\u0301mple.com", true},
		// FuzzValidEmail: any non-ASCII rune passed as a letter.
		{"C1 control in domain", "0@0.\u0081", false},
		{"no-break space in domain", "ada@example.\u00a0com", false},
		{"zero-width space in domain", "ada@exam\u200bple.com", false},
		{"line separator in domain", "ada@example.co\u2028m", false},
		// IDNA2008 (RFC 5892 Appendix A) allows a few punctuation marks in
		// a label, each in its context: they are valid domains.
		{"punycode domain", "ada@xn--mnchen-3ya.de", true},
		{"catalan middle dot between l and l", "ada@col\u00b7legi.cat", true},
		{"middle dot elsewhere", "ada@co\u00b7legi.cat", false},
		{"middle dot at the end", "ada@col\u00b7.cat", false},
		{"katakana middle dot with katakana", "ada@\u30c9\u30e1\u30a4\u30f3\u30fb\u30c6\u30b9\u30c8.jp", true},
		{"katakana middle dot without kana or han", "ada@abc\u30fbdef.jp", false},
		{"hebrew geresh after hebrew", "ada@\u05d0\u05f3\u05d1.il", true},
		{"hebrew geresh after latin", "ada@a\u05f3b.il", false},
		{"greek keraia before greek", "ada@\u03b1\u0375\u03b2.gr", true},
		{"greek keraia before latin", "ada@\u03b1\u0375b.gr", false},
		{"quoted local part", `"ada lovelace"@example.com`, false},
		{"comment", "ada@example.com (Ada)", false},
		{"empty local part", "@example.com", false},
		{"too long", strings.Repeat("a", 250) + "@x.com", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := api.ValidEmail(tt.in); got != tt.want {
				t.Errorf("ValidEmail(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestLeadPatch(t *testing.T) {
	e := newEnv(t, nil)
	base := api.Lead{Name: "Ada", Email: "ada@example.com", Phone: "+14155550100", Company: "AE", Notes: "n", Status: "new"}
	tests := []struct {
		name  string
		patch string
		want  func(l *api.Lead)
	}{
		{"empty", `{}`, func(l *api.Lead) {}},
		{"status", `{"status":"qualified"}`, func(l *api.Lead) { l.Status = "qualified" }},
		{"nulls clear", `{"email":null,"company":null,"notes":null}`, func(l *api.Lead) { l.Email, l.Company, l.Notes = "", "", "" }},
		{"empty email clears", `{"email":""}`, func(l *api.Lead) { l.Email = "" }},
		{"phone normalised", `{"phone":"+1 (415) 555-0199"}`, func(l *api.Lead) { l.Phone = "+14155550199" }},
		{"everything", `{"name":"Grace","email":"g@navy.example","phone":"001 212 555 0100","company":"Navy","notes":"","status":"lost"}`,
			func(l *api.Lead) {
				*l = api.Lead{Name: "Grace", Email: "g@navy.example", Phone: "+12125550100", Company: "Navy", Status: "lost"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created := e.checked("POST", "/v1/leads", `{"name":"Ada","email":"ada@example.com","phone":"+14155550100","company":"AE","notes":"n"}`)
			id := body[api.Lead](t, created).ID
			t.Cleanup(func() { e.checked("DELETE", "/v1/leads/"+id, "") })
			w := e.checked("PATCH", "/v1/leads/"+id, tt.patch)
			if w.Code != 200 {
				t.Fatalf("PATCH = %d: %s", w.Code, w.Body)
			}
			want := base
			tt.want(&want)
			got := body[api.Lead](t, w)
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(api.Lead{}, "ID", "CreatedAt", "UpdatedAt")); diff != "" {
				t.Errorf("PATCH %s (-want +got):\n%s", tt.patch, diff)
			}
		})
	}
}

func TestLeadRefusals(t *testing.T) {
	e := newEnv(t, nil)
	e.checked("POST", "/v1/leads", `{"name":"Ada","phone":"+14155550100"}`)
	tests := []struct {
		name    string
		body    string
		code    apierror.Code
		field   string
		message string
	}{
		{"same phone", `{"name":"B","phone":"+1 415 555 0100"}`, apierror.AlreadyExists, "phone", "A lead with this phone number already exists"},
		{"same phone 00", `{"name":"B","phone":"001-415-555-0100"}`, apierror.AlreadyExists, "phone", "A lead with this phone number already exists"},
		{"no phone", `{"name":"B"}`, apierror.MissingField, "phone", "Missing required field: phone"},
		{"null phone", `{"name":"B","phone":null}`, apierror.MissingField, "phone", "Missing required field: phone"},
		{"no name", `{"phone":"+14155550101"}`, apierror.MissingField, "name", "Missing required field: name"},
		{"bad email", `{"name":"B","phone":"+14155550101","email":"b@"}`, apierror.ValidationError, "email", "Invalid email format"},
		{"status null", `{"name":"B","phone":"+14155550101","status":null}`, apierror.ValidationError, "status", "Must not be null"},
		{"phone as number", `{"name":"B","phone":14155550101}`, apierror.InvalidRequest, "phone", ""},
		{"unknown member", `{"name":"B","phone":"+14155550101","score":3}`, apierror.InvalidRequest, "score", ""},
		{"not an object", `["name"]`, apierror.InvalidRequest, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.checked("POST", "/v1/leads", tt.body)
			got := decode(t, w)
			field, _ := got.Details["field"].(string)
			if w.Code != tt.code.Status() || got.Code != tt.code || field != tt.field || (tt.message != "" && got.Message != tt.message) {
				t.Errorf("%s = %d %s, want %s field %q message %q", tt.body, w.Code, w.Body, tt.code, tt.field, tt.message)
			}
			if tt.code == apierror.AlreadyExists && got.Details["resource"] != "lead" {
				t.Errorf("details.resource = %v, want lead", got.Details["resource"])
			}
		})
	}
}

// TestLeadPhoneUniquePerAccount: the same phone in another account is not
// a conflict.
func TestLeadPhoneUniquePerAccount(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	other, _, err := e.st.EnsureAccount(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := api.CreateKey(ctx, e.st, other.ID, api.KeyRequest{Name: "b", Scopes: []string{auth.ScopeLeadsWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if w := e.checked("POST", "/v1/leads", `{"name":"A","phone":"+14155550100"}`); w.Code != 201 {
		t.Fatalf("ours = %d %s", w.Code, w.Body)
	}
	if w := e.do("POST", "/v1/leads", `{"name":"A","phone":"+14155550100"}`, bearer(theirs.Secret)...); w.Code != 201 {
		t.Errorf("theirs, same phone = %d %s", w.Code, w.Body)
	}
}

// TestSuccessField: with the server's success_field option, bodies carry
// "success" and still match the document.
func TestSuccessField(t *testing.T) {
	st := backends[0].open(t)
	ctx := context.Background()
	acc, _, err := st.EnsureAccount(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := api.CreateKey(ctx, st, acc.ID, api.KeyRequest{Name: "admin", Scopes: []string{auth.ScopeAll}})
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{SuccessField: true})
	api.New(api.Config{Store: st, Verifier: auth.NewVerifier(store.AuthKeys(st))}).Routes(srv.Handle)
	h := srv.Handler()
	c := loadContract(t)
	tests := []struct {
		name, method, target, body string
		status                     int
		prefix                     string
	}{
		{"created", "POST", "/v1/leads", `{"name":"A","phone":"+14155550100"}`, 201, `{"success":true,"id":"lead_`},
		{"list", "GET", "/v1/leads", "", 200, `{"success":true,"data":[`},
		{"error", "POST", "/v1/leads", `{"name":"A","phone":"+14155550100"}`, 409, `{"success":false,"error":{"code":"ALREADY_EXISTS"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd io.Reader
			if tt.body != "" {
				rd = strings.NewReader(tt.body)
			}
			r := httptest.NewRequest(tt.method, tt.target, rd)
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Authorization", "Bearer "+admin.Secret)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || !strings.HasPrefix(w.Body.String(), tt.prefix) {
				t.Errorf("%s %s = %d %s, want %d %s…", tt.method, tt.target, w.Code, w.Body, tt.status, tt.prefix)
			}
			c.checkRecorder(t, r, w)
		})
	}
}
