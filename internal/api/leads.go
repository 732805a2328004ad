package api

import (
	"fmt"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// Limits of lead fields.
const (
	// MaxEmailLen bounds an email address, in bytes (RFC 5321's path limit).
	MaxEmailLen = 254
	// MaxNotesLen bounds a lead's notes, in characters.
	MaxNotesLen = 10000
)

// leadStatuses lists the values of a lead's status.
var leadStatuses = []string{store.LeadNew, store.LeadContacted, store.LeadQualified, store.LeadLost}

// Reasons reported in VALIDATION_ERROR for a lead's contact fields.
const (
	ReasonEmail = "Invalid email format"
	ReasonPhone = "Invalid phone number: expected E.164, e.g. +14155550123"
)

// Lead is a lead as the API shows it. Optional text fields are "" when
// unset; Phone is in E.164 form.
type Lead struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	Phone     string    `json:"phone"`
	Company   string    `json:"company"`
	Notes     string    `json:"notes"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// NewLeadView returns the API's view of l.
func NewLeadView(l store.Lead) Lead {
	return Lead{ID: l.ID, Name: l.Name, Email: l.Email, Phone: l.Phone, Company: l.Company,
		Notes: l.Notes, Status: l.Status, CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt}
}

// NormalizePhone returns phone in E.164 form: spaces, dashes, dots and
// parentheses are removed, a leading "00" becomes "+", and the result must
// be "+" followed by 8 to 15 digits, the first not 0 (no country code
// starts with 0). ok is false otherwise.
func NormalizePhone(phone string) (e164 string, ok bool) {
	var b strings.Builder
	for _, c := range phone {
		switch c {
		case ' ', '-', '.', '(', ')':
			continue
		}
		b.WriteRune(c)
	}
	p := b.String()
	if rest, found := strings.CutPrefix(p, "00"); found {
		p = "+" + rest
	}
	digits, found := strings.CutPrefix(p, "+")
	if !found || len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", false
		}
	}
	return p, true
}

// ValidEmail reports whether s is a plain email address: at most
// MaxEmailLen bytes, accepted by net/mail.ParseAddress and equal to the
// address it parses to (so no display name, comments, quoting or
// surrounding space), with a domain of at least two dot-separated labels
// of letters, digits and inner hyphens (non-ASCII letters, their combining
// marks and digits allowed, and the few punctuation marks IDNA2008 allows
// in their context, see contextO; no other non-ASCII character, such as a
// space or a control), and no IP literal.
//
// No validation library is used: the popular ones either pull in a large
// dependency for one regular expression or probe DNS and SMTP, which do
// not belong in a request path; net/mail already implements RFC 5322's
// address grammar.
func ValidEmail(s string) bool {
	if len(s) > MaxEmailLen {
		return false
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Address != s {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	labels := strings.Split(s[at+1:], ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		rs := []rune(l)
		for i, c := range rs {
			if c < utf8.RuneSelf && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') ||
				c >= utf8.RuneSelf && !unicode.IsLetter(c) && !unicode.IsMark(c) && !unicode.IsDigit(c) && !contextO(rs, i) {
				return false
			}
		}
	}
	return true
}

// contextO reports whether label[i] is one of the punctuation marks
// IDNA2008 allows in a label, in the context it allows it (RFC 5892,
// Appendix A.3–A.7): a middle dot between two l (Catalan "l·l"), a Greek
// keraia before a Greek letter, a Hebrew geresh or gershayim after a
// Hebrew letter, a katakana middle dot in a label with hiragana, katakana
// or han.
func contextO(label []rune, i int) bool {
	switch label[i] {
	case '\u00b7':
		return i > 0 && i < len(label)-1 && (label[i-1] == 'l' || label[i-1] == 'L') && (label[i+1] == 'l' || label[i+1] == 'L')
	case '\u0375':
		return i < len(label)-1 && unicode.Is(unicode.Greek, label[i+1])
	case '\u05f3', '\u05f4':
		return i > 0 && unicode.Is(unicode.Hebrew, label[i-1])
	case '\u30fb':
		for _, c := range label {
			if c != '\u30fb' && (unicode.In(c, unicode.Hiragana, unicode.Katakana, unicode.Han)) {
				return true
			}
		}
	}
	return false
}

// leadInput is the body of POST /v1/leads and PATCH /v1/leads/{id}.
type leadInput struct {
	Name    opt[string] `json:"name"`
	Email   opt[string] `json:"email"`
	Phone   opt[string] `json:"phone"`
	Company opt[string] `json:"company"`
	Notes   opt[string] `json:"notes"`
	Status  opt[string] `json:"status"`
}

// apply validates every member of in that is present and writes it into
// l, as sessionInput.apply does. Null clears email, company and notes, and
// is refused for name, phone and status. An empty email means none.
func (in leadInput) apply(l *store.Lead) []apierror.FieldError {
	var errs fieldErrors
	if v, ok := notNull(&errs, "name", in.Name); ok {
		switch {
		case strings.TrimSpace(v) == "":
			errs.add("name", "Must not be empty")
		case utf8.RuneCountInString(v) > MaxTextLen:
			errs.add("name", fmt.Sprintf("Must be at most %d characters", MaxTextLen))
		default:
			l.Name = v
		}
	}
	if v, ok := in.Email.text(); ok {
		if v != "" && !ValidEmail(v) {
			errs.add("email", ReasonEmail)
		} else {
			l.Email = v
		}
	}
	if v, ok := notNull(&errs, "phone", in.Phone); ok {
		if p, valid := NormalizePhone(v); !valid {
			errs.add("phone", ReasonPhone)
		} else {
			l.Phone = p
		}
	}
	if v, ok := in.Company.text(); ok {
		if utf8.RuneCountInString(v) > MaxTextLen {
			errs.add("company", fmt.Sprintf("Must be at most %d characters", MaxTextLen))
		} else {
			l.Company = v
		}
	}
	if v, ok := in.Notes.text(); ok {
		if utf8.RuneCountInString(v) > MaxNotesLen {
			errs.add("notes", fmt.Sprintf("Must be at most %d characters", MaxNotesLen))
		} else {
			l.Notes = v
		}
	}
	if v, ok := notNull(&errs, "status", in.Status); ok {
		if !slices.Contains(leadStatuses, v) {
			errs.add("status", "Must be one of: "+strings.Join(leadStatuses, ", "))
		} else {
			l.Status = v
		}
	}
	return errs
}

func (a *API) createLead(w http.ResponseWriter, r *http.Request) {
	var in leadInput
	if err := middleware.DecodeJSON(r, &in, middleware.DecodeOptions{Required: []string{"name", "phone"}}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	l := store.Lead{AccountID: principal(r).AccountID, Status: store.LeadNew}
	if errs := in.apply(&l); len(errs) > 0 {
		apierror.Write(w, r, validation(errs))
		return
	}
	created, err := a.cfg.Store.CreateLead(r.Context(), l)
	if err != nil {
		apierror.Write(w, r, storeError(err, "lead", "Lead"))
		return
	}
	w.Header().Set("Location", "/v1/leads/"+created.ID)
	respond(w, r, http.StatusCreated, NewLeadView(created))
}

func (a *API) listLeads(w http.ResponseWriter, r *http.Request) {
	page, q, err := listQuery(r, store.PrefixLead, "status")
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	f := store.LeadFilter{Status: q["status"]}
	if _, ok := q["status"]; ok && !slices.Contains(leadStatuses, f.Status) {
		apierror.Write(w, r, badQuery("status", "must be one of: "+strings.Join(leadStatuses, ", ")))
		return
	}
	ls, next, err := a.cfg.Store.ListLeads(r.Context(), principal(r).AccountID, f, page)
	if err != nil {
		apierror.Write(w, r, storeError(err, "lead", "Lead"))
		return
	}
	views := make([]Lead, len(ls))
	for i, l := range ls {
		views[i] = NewLeadView(l)
	}
	respond(w, r, http.StatusOK, newList(views, encodeCursor(next)))
}

func (a *API) getLead(w http.ResponseWriter, r *http.Request) {
	l, err := a.cfg.Store.LeadByID(r.Context(), principal(r).AccountID, pathID(r))
	if err != nil {
		apierror.Write(w, r, storeError(err, "lead", "Lead"))
		return
	}
	respond(w, r, http.StatusOK, NewLeadView(l))
}

func (a *API) updateLead(w http.ResponseWriter, r *http.Request) {
	var in leadInput
	if err := middleware.DecodeJSON(r, &in, middleware.DecodeOptions{}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	if errs := in.apply(&store.Lead{}); len(errs) > 0 {
		apierror.Write(w, r, validation(errs))
		return
	}
	// As for sessions, the store applies the change to the lead as stored
	// when it writes, so concurrent PATCHes lose none of each other's
	// members.
	updated, err := a.cfg.Store.UpdateLead(r.Context(), principal(r).AccountID, pathID(r),
		func(l *store.Lead) error {
			in.apply(l)
			return nil
		})
	if err != nil {
		apierror.Write(w, r, storeError(err, "lead", "Lead"))
		return
	}
	respond(w, r, http.StatusOK, NewLeadView(updated))
}

func (a *API) deleteLead(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Store.DeleteLead(r.Context(), principal(r).AccountID, pathID(r)); err != nil {
		apierror.Write(w, r, storeError(err, "lead", "Lead"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
