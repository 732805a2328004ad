package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/oklog/ulid/v2"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// Limits of session fields.
const (
	// MaxExternalIDLen bounds sessionExternalId, in characters.
	MaxExternalIDLen = 255
	// MaxTextLen bounds the short text fields (title, source, model, a
	// lead's name and company), in characters.
	MaxTextLen = 255
	// MaxMetadataBytes bounds a session's metadata, measured as compact JSON.
	MaxMetadataBytes = 16 << 10
)

// sessionStatuses lists the values of a session's status.
var sessionStatuses = []string{store.SessionActive, store.SessionCompleted, store.SessionFailed}

// Session is a session as the API shows it. Optional text fields are ""
// when unset; EndedAt is null until the session ends.
type Session struct {
	ID                string          `json:"id"`
	SessionExternalID string          `json:"sessionExternalId"`
	Title             string          `json:"title"`
	Source            string          `json:"source"`
	Model             string          `json:"model"`
	Status            string          `json:"status"`
	StartedAt         time.Time       `json:"startedAt"`
	EndedAt           *time.Time      `json:"endedAt"`
	Tokens            int64           `json:"tokens"`
	Metadata          json.RawMessage `json:"metadata"`
	CreatedAt         time.Time       `json:"createdAt"`
	UpdatedAt         time.Time       `json:"updatedAt"`
}

// NewSessionView returns the API's view of s.
func NewSessionView(s store.Session) Session {
	meta := s.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage(`{}`)
	}
	return Session{ID: s.ID, SessionExternalID: s.ExternalID, Title: s.Title, Source: s.Source, Model: s.Model,
		Status: s.Status, StartedAt: s.StartedAt, EndedAt: s.EndedAt, Tokens: s.Tokens, Metadata: meta,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt}
}

// sessionInput is the body of POST /v1/sessions and PATCH
// /v1/sessions/{id}: each member may be absent, null or a value.
type sessionInput struct {
	SessionExternalID opt[string]         `json:"sessionExternalId"`
	Title             opt[string]         `json:"title"`
	Source            opt[string]         `json:"source"`
	Model             opt[string]         `json:"model"`
	Status            opt[string]         `json:"status"`
	StartedAt         opt[string]         `json:"startedAt"`
	EndedAt           opt[string]         `json:"endedAt"`
	Tokens            opt[int64]          `json:"tokens"`
	Metadata          opt[jsontext.Value] `json:"metadata"`
}

// apply validates every member of in that is present and writes it into
// s. It returns one FieldError per bad member, in wire order. Null clears
// the nullable members (title, source, model → "", endedAt → null,
// metadata → {}) and is refused for the others.
func (in sessionInput) apply(s *store.Session) []apierror.FieldError {
	var errs fieldErrors
	if v, ok := notNull(&errs, "sessionExternalId", in.SessionExternalID); ok {
		switch {
		case v == "":
			errs.add("sessionExternalId", "Must not be empty")
		case utf8.RuneCountInString(v) > MaxExternalIDLen:
			errs.add("sessionExternalId", fmt.Sprintf("Must be at most %d characters", MaxExternalIDLen))
		default:
			s.ExternalID = v
		}
	}
	for _, f := range []struct {
		name string
		in   opt[string]
		dst  *string
	}{{"title", in.Title, &s.Title}, {"source", in.Source, &s.Source}, {"model", in.Model, &s.Model}} {
		if v, ok := f.in.text(); ok {
			if utf8.RuneCountInString(v) > MaxTextLen {
				errs.add(f.name, fmt.Sprintf("Must be at most %d characters", MaxTextLen))
			} else {
				*f.dst = v
			}
		}
	}
	if v, ok := notNull(&errs, "status", in.Status); ok {
		if !slices.Contains(sessionStatuses, v) {
			errs.add("status", "Must be one of: "+strings.Join(sessionStatuses, ", "))
		} else {
			s.Status = v
		}
	}
	if v, ok := notNull(&errs, "startedAt", in.StartedAt); ok {
		if t, err := parseTime(v); err != nil {
			errs.add("startedAt", timeReasonOf(err))
		} else {
			s.StartedAt = t
		}
	}
	if in.EndedAt.Set {
		if in.EndedAt.Null {
			s.EndedAt = nil
		} else if t, err := parseTime(in.EndedAt.V); err != nil {
			errs.add("endedAt", timeReasonOf(err))
		} else {
			s.EndedAt = &t
		}
	}
	if v, ok := notNull(&errs, "tokens", in.Tokens); ok {
		switch {
		case in.Tokens.Overflow > 0:
			errs.add("tokens", fmt.Sprintf("Must be at most %d", int64(math.MaxInt64)))
		case v < 0 || in.Tokens.Overflow < 0:
			errs.add("tokens", "Must be an integer ≥ 0")
		default:
			s.Tokens = v
		}
	}
	if in.Metadata.Set {
		switch meta := in.Metadata.V; {
		case in.Metadata.Null:
			s.Metadata = json.RawMessage(`{}`)
		case meta.Kind() != '{':
			errs.add("metadata", "Must be a JSON object")
		default:
			meta = meta.Clone()
			if err := meta.Compact(); err != nil {
				errs.add("metadata", "Must be a JSON object")
			} else if len(meta) > MaxMetadataBytes {
				errs.add("metadata", fmt.Sprintf("Must be at most %d bytes of JSON", MaxMetadataBytes))
			} else {
				s.Metadata = json.RawMessage(meta)
			}
		}
	}
	return errs
}

// checkSession applies the rules between fields, and between the stored
// status was and the new one (was is "" on create). It returns
// UNPROCESSABLE.
func checkSession(s store.Session, was string) error {
	if s.EndedAt != nil && s.EndedAt.Before(s.StartedAt) {
		return apierror.New(apierror.Unprocessable, "endedAt must not be before startedAt.").
			With("field", "endedAt").With("reason", "endedAt is before startedAt")
	}
	if s.Status == store.SessionActive && (was == store.SessionCompleted || was == store.SessionFailed) {
		return apierror.New(apierror.Unprocessable, "A "+was+" session cannot become active again.").
			With("field", "status").With("reason", "status cannot move from "+was+" back to active")
	}
	return nil
}

func (a *API) createSession(w http.ResponseWriter, r *http.Request) {
	var in sessionInput
	if err := middleware.DecodeJSON(r, &in, middleware.DecodeOptions{Required: []string{"sessionExternalId"}}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	s := store.Session{AccountID: principal(r).AccountID, Status: store.SessionActive, StartedAt: a.cfg.Now()}
	if errs := in.apply(&s); len(errs) > 0 {
		apierror.Write(w, r, validation(errs))
		return
	}
	if err := checkSession(s, ""); err != nil {
		middleware.DontStore(w) // a rule of the body alone: fix it, resend with the same key
		apierror.Write(w, r, err)
		return
	}
	created, err := a.cfg.Store.CreateSession(r.Context(), s)
	if err != nil {
		apierror.Write(w, r, storeError(err, "session", "Session"))
		return
	}
	w.Header().Set("Location", "/v1/sessions/"+created.ID)
	respond(w, r, http.StatusCreated, NewSessionView(created))
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	page, q, err := listQuery(r, store.PrefixSession, "status", "source")
	if err != nil {
		apierror.Write(w, r, err)
		return
	}
	f := store.SessionFilter{Status: q["status"], Source: q["source"]}
	if v, ok := q["source"]; ok && v == "" {
		// The store reads "" as no filter; an exact match on "" (sessions
		// without a source) is not offered.
		apierror.Write(w, r, badQuery("source", "must not be empty"))
		return
	}
	if _, ok := q["status"]; ok && !slices.Contains(sessionStatuses, f.Status) {
		apierror.Write(w, r, badQuery("status", "must be one of: "+strings.Join(sessionStatuses, ", ")))
		return
	}
	ss, next, err := a.cfg.Store.ListSessions(r.Context(), principal(r).AccountID, f, page)
	if err != nil {
		apierror.Write(w, r, storeError(err, "session", "Session"))
		return
	}
	views := make([]Session, len(ss))
	for i, s := range ss {
		views[i] = NewSessionView(s)
	}
	respond(w, r, http.StatusOK, newList(views, encodeCursor(next)))
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request) {
	s, err := a.cfg.Store.SessionByID(r.Context(), principal(r).AccountID, pathID(r))
	if err != nil {
		apierror.Write(w, r, storeError(err, "session", "Session"))
		return
	}
	respond(w, r, http.StatusOK, NewSessionView(s))
}

func (a *API) updateSession(w http.ResponseWriter, r *http.Request) {
	var in sessionInput
	if err := middleware.DecodeJSON(r, &in, middleware.DecodeOptions{}); err != nil {
		apierror.Write(w, r, err)
		return
	}
	// Field rules first, against a scratch session: they do not depend on
	// what is stored, and a bad body is 400 whether or not the id exists.
	if errs := in.apply(&store.Session{}); len(errs) > 0 {
		apierror.Write(w, r, validation(errs))
		return
	}
	// The change and the rules between fields and states are applied by
	// the store to the session as stored when it writes, under its lock:
	// concurrent PATCHes apply one after the other, none losing another's
	// members, and a rule is judged against the session it changes.
	updated, err := a.cfg.Store.UpdateSession(r.Context(), principal(r).AccountID, pathID(r),
		func(s *store.Session) error {
			was := s.Status
			in.apply(s)
			return checkSession(*s, was)
		})
	if err != nil {
		apierror.Write(w, r, storeError(err, "session", "Session"))
		return
	}
	respond(w, r, http.StatusOK, NewSessionView(updated))
}

func (a *API) deleteSession(w http.ResponseWriter, r *http.Request) {
	if err := a.cfg.Store.DeleteSession(r.Context(), principal(r).AccountID, pathID(r)); err != nil {
		apierror.Write(w, r, storeError(err, "session", "Session"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// What follows is shared by the sessions and leads handlers.

// opt is a request member that may be absent (Set false), null (Null
// true) or a value (V).
type opt[T any] struct {
	Set, Null bool
	V         T
	// Overflow is +1 (or -1) for an integer too large (too small) for
	// T: a value breaking a range rule, reported by validation with the
	// member's other errors, not by the decoder.
	Overflow int
}

// UnmarshalJSONFrom implements json.UnmarshalerFrom; a wrong type is
// reported by the decoder as for a plain T, an integer out of T's range
// is recorded in Overflow.
func (o *opt[T]) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	o.Set = true
	if dec.PeekKind() == 'n' {
		o.Null = true
		_, err := dec.ReadToken()
		return err
	}
	if dec.PeekKind() == '0' {
		// A number: read it whole first, so that one out of range can be
		// recorded and the decoding go on.
		val, err := dec.ReadValue()
		if err != nil {
			return err
		}
		err = jsonv2.Unmarshal(val, &o.V)
		if errors.Is(err, strconv.ErrRange) {
			o.Overflow = 1
			if val[0] == '-' {
				o.Overflow = -1
			}
			return nil
		}
		return err
	}
	return jsonv2.UnmarshalDecode(dec, &o.V)
}

// text returns the value of an optional text member: "" for null. ok is
// false when the member is absent.
func (o opt[T]) text() (T, bool) { return o.V, o.Set } // V is the zero value when absent or null

// fieldErrors collects the bad members of a request, in order.
type fieldErrors []apierror.FieldError

func (e *fieldErrors) add(field, reason string) {
	*e = append(*e, apierror.FieldError{Field: field, Reason: reason})
}

// notNull returns the value of a member that may be absent but not null;
// a null is recorded as an error. ok is true when there is a value.
func notNull[T any](e *fieldErrors, field string, o opt[T]) (T, bool) {
	if o.Set && o.Null {
		e.add(field, "Must not be null")
	}
	return o.V, o.Set && !o.Null
}

// Reasons given for a date-time that parseTime refuses.
const (
	timeReason      = "Must be an RFC 3339 date-time, e.g. 2026-11-22T10:00:00Z"
	timeRangeReason = "Must be between 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z"
)

// errTimeRange is a date-time whose UTC year is outside 0000–9999: RFC
// 3339 cannot write it back.
var errTimeRange = errors.New("api: date-time outside years 0000-9999 in UTC")

// parseTime parses an RFC 3339 date-time (fractional seconds allowed) and
// returns it in UTC, where its year must be 0000–9999: the answer, and
// every later read of the record, writes it back in RFC 3339.
func parseTime(s string) (time.Time, error) {
	// time.Parse also takes an offset of +24:00 or +23:60 and a comma
	// before the fraction, which RFC 3339 does not.
	if !rfc3339Shape(s) {
		return time.Time{}, errTimeForm
	}
	// The shape holds only digits and separators besides T and Z, which
	// RFC 3339 lets be lower case and time.Parse does not.
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("api: parse time: %w", err)
	}
	t = t.UTC()
	if !timeInRange(t) {
		return time.Time{}, errTimeRange
	}
	return t, nil
}

// errTimeForm is a date-time not written as RFC 3339 §5.6 says.
var errTimeForm = errors.New("api: not an RFC 3339 date-time")

// rfc3339Shape reports whether s is written as RFC 3339 §5.6 says:
// YYYY-MM-DDTHH:MM:SS, an optional "." and digits, then Z or ±HH:MM with
// an offset of at most 23:59 (T and Z in either case). The ranges of the
// date and the time themselves are left to time.Parse.
func rfc3339Shape(s string) bool {
	digits := func(i, n int) bool {
		for j := i; j < i+n; j++ {
			if j >= len(s) || s[j] < '0' || s[j] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < len("2006-01-02T15:04:05Z") || !digits(0, 4) || s[4] != '-' || !digits(5, 2) || s[7] != '-' ||
		!digits(8, 2) || s[10] != 'T' && s[10] != 't' || !digits(11, 2) || s[13] != ':' || !digits(14, 2) ||
		s[16] != ':' || !digits(17, 2) {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		h, m := rest[1:3], rest[4:6]
		return '0' <= h[0] && h[0] <= '2' && '0' <= h[1] && h[1] <= '9' && h <= "23" &&
			'0' <= m[0] && m[0] <= '5' && '0' <= m[1] && m[1] <= '9'
	}
	return false
}

// timeInRange reports whether t's UTC year is 0000–9999.
func timeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return 0 <= y && y <= 9999
}

// timeReasonOf is the reason given for err from parseTime.
func timeReasonOf(err error) string {
	if errors.Is(err, errTimeRange) {
		return timeRangeReason
	}
	return timeReason
}

// badQuery returns INVALID_REQUEST for query parameter field.
func badQuery(field, reason string) *apierror.Error {
	return apierror.New(apierror.InvalidRequest, "Invalid query parameter "+field+": "+reason+".").
		With("field", field).With("reason", reason)
}

// queryParams reads r's query string, which may hold only the named
// parameters, each once, as UTF-8 text without NUL. Unknown, repeated and
// malformed parameters are INVALID_REQUEST with details.field (the first
// bad one, by name).
func queryParams(r *http.Request, allowed ...string) (map[string]string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, apierror.New(apierror.InvalidRequest, "The query string is malformed.").With("reason", "bad query")
	}
	out := make(map[string]string, len(q))
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if !slices.Contains(allowed, name) {
			return nil, badQuery(name, "unknown parameter")
		}
		if len(q[name]) > 1 {
			return nil, badQuery(name, "repeated parameter")
		}
		if !storable(q[name][0]) {
			// Text that no store can hold, and no record holds.
			return nil, badQuery(name, "must be UTF-8 text without NUL characters")
		}
		out[name] = q[name][0]
	}
	return out, nil
}

// listQuery reads the page (limit, cursor) and the named filters from r's
// query string, as queryParams does. prefix is the ID prefix of the listed
// resource, which a cursor must carry.
func listQuery(r *http.Request, prefix string, filters ...string) (store.Page, map[string]string, error) {
	out, err := queryParams(r, append([]string{"limit", "cursor"}, filters...)...)
	if err != nil {
		return store.Page{}, nil, err
	}
	page := store.Page{Limit: store.DefaultLimit}
	if v, ok := out["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > store.MaxLimit {
			return store.Page{}, nil, badQuery("limit", fmt.Sprintf("must be an integer from 1 to %d", store.MaxLimit))
		}
		page.Limit = n
	}
	if v, ok := out["cursor"]; ok {
		after, ok := decodeCursor(v, prefix)
		if !ok {
			return store.Page{}, nil, badQuery("cursor", "invalid cursor")
		}
		page.After = after
	}
	delete(out, "limit")
	delete(out, "cursor")
	return page, out, nil
}

// encodeCursor wraps the store's next-page cursor (the last ID of the
// page) for clients; "" stays "".
func encodeCursor(next string) string {
	if next == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(next))
}

// decodeCursor unwraps a cursor made by encodeCursor for a resource with
// ID prefix prefix, and refuses any other spelling: a lower-case ULID
// decodes to an ID no store issued, which sorts apart from the one it
// spells (a wrong page instead of a 400), and line breaks or stray bits
// in the base64 would make two cursors of one. A crafted cursor can only
// skip ahead within the caller's own account: lists are always filtered
// by account.
func decodeCursor(c, prefix string) (string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", false
	}
	id, ok := strings.CutPrefix(string(b), prefix)
	if !ok {
		return "", false
	}
	if u, err := ulid.ParseStrict(id); err != nil || u.String() != id || encodeCursor(string(b)) != c {
		return "", false
	}
	return string(b), true
}
