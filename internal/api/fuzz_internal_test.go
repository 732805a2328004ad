package api

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"

	"github.com/tollgate-dev/tollgate/apierror"
	"github.com/tollgate-dev/tollgate/store"
)

// cursorPrefixes are the ID prefixes of the listed resources.
var cursorPrefixes = []string{store.PrefixSession, store.PrefixLead, store.PrefixKey}

// FuzzCursor checks the list cursor (next_cursor, ?cursor=) on random
// text and random IDs. Properties: decoding never panics; a cursor is
// accepted only when it is exactly what encodeCursor makes of an ID the
// store could have issued for that resource (the prefix and a canonical,
// upper-case ULID), so decode then encode gives the cursor back; a
// refused one gives ""; every such ID round-trips through encodeCursor
// and decodeCursor, and is refused under another resource's prefix.
// Seeds live in testdata/fuzz/FuzzCursor.
func FuzzCursor(f *testing.F) {
	id := store.PrefixSession + "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	f.Add(encodeCursor(id), uint8(0), int64(0), []byte("0123456789"))
	f.Add(encodeCursor(store.PrefixLead+"01ARZ3NDEKTSV4RRFFQ69G5FAV"), uint8(1), int64(1)<<48-1, []byte{})
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(id))), uint8(0), int64(-1), []byte{0xff})
	f.Add(base64.URLEncoding.EncodeToString([]byte(id)), uint8(0), int64(1), []byte{})
	f.Add(encodeCursor(id)[:20]+"\n"+encodeCursor(id)[20:], uint8(0), int64(1), []byte{})
	f.Add(encodeCursor(store.PrefixLead + "01ARZ3NDEKTSV4RRFFQ69G5FAV")[:41]+"x", uint8(1), int64(1), []byte{})
	f.Add(encodeCursor(store.PrefixSession+"8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), uint8(0), int64(0), []byte{})
	f.Add("", uint8(2), int64(0), []byte{})
	f.Add("!!!", uint8(2), int64(0), []byte{})
	f.Fuzz(func(t *testing.T, c string, which uint8, ms int64, entropy []byte) {
		prefix := cursorPrefixes[int(which)%len(cursorPrefixes)]
		got, ok := decodeCursor(c, prefix)
		if !ok {
			if got != "" {
				t.Fatalf("decodeCursor(%q) refused with %q", c, got)
			}
		} else {
			rest, hasPrefix := strings.CutPrefix(got, prefix)
			u, err := ulid.ParseStrict(rest)
			switch {
			case !hasPrefix || err != nil:
				t.Fatalf("decodeCursor(%q, %q) = %q: not an ID (%v)", c, prefix, got, err)
			case u.String() != rest:
				t.Fatalf("decodeCursor(%q, %q) = %q: not the canonical %s", c, prefix, got, u)
			case encodeCursor(got) != c:
				t.Fatalf("decodeCursor(%q) = %q, whose cursor is %q", c, got, encodeCursor(got))
			}
		}

		// An ID as the store makes it round-trips.
		var u ulid.ULID
		_ = u.SetTime(uint64(ms) & (1<<48 - 1))
		copy(u[6:], entropy)
		id := prefix + u.String()
		if got, ok := decodeCursor(encodeCursor(id), prefix); !ok || got != id {
			t.Fatalf("decodeCursor(encodeCursor(%q)) = %q, %v", id, got, ok)
		}
		other := cursorPrefixes[(int(which)+1)%len(cursorPrefixes)]
		if got, ok := decodeCursor(encodeCursor(id), other); ok {
			t.Fatalf("the cursor of %q is accepted for %q as %q", id, other, got)
		}
	})
}

// TestDecodeCursor: only the cursor encodeCursor makes of an ID the store
// issued is accepted. The refusals of other encodings of the same ID are
// FuzzCursor's findings: each decoded to an ID no store holds, or to
// one by another spelling.
func TestDecodeCursor(t *testing.T) {
	id := store.PrefixSession + "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	issued := encodeCursor(id)
	lead := encodeCursor(store.PrefixLead + "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	tests := []struct {
		name, cursor, prefix string
		want                 string // "" for refused
	}{
		{"issued", issued, store.PrefixSession, id},
		{"lead", lead, store.PrefixLead, store.PrefixLead + "01ARZ3NDEKTSV4RRFFQ69G5FAV"},
		{"another resource's", lead, store.PrefixSession, ""},
		{"lower-case ULID", base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(id))), store.PrefixSession, ""},
		{"mixed-case ULID", base64.RawURLEncoding.EncodeToString([]byte("ses_04cMtcMtcMtcM4cMtcM4cM4cMt")), store.PrefixSession, ""},
		{"line break", issued[:20] + "\n" + issued[20:], store.PrefixSession, ""},
		{"stray low bits", lead[:len(lead)-1] + "x", store.PrefixLead, ""},
		{"padded", base64.URLEncoding.EncodeToString([]byte(store.PrefixLead + "01ARZ3NDEKTSV4RRFFQ69G5FAV")), store.PrefixLead, ""},
		{"ULID overflow", encodeCursor(store.PrefixSession + "8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), store.PrefixSession, ""},
		{"empty", "", store.PrefixSession, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := decodeCursor(tt.cursor, tt.prefix)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("decodeCursor(%q, %q) = %q, %v; want %q", tt.cursor, tt.prefix, got, ok, tt.want)
			}
		})
	}
}

// FuzzListQuery checks listQuery, the reading of a list's query string
// (limit, cursor and a resource's filters), on random query strings.
// Properties: it never panics; a refusal is a 400 INVALID_REQUEST whose
// details.field (when it has one) is a parameter of the query; an
// accepted query holds only known parameters, once each, as UTF-8 text
// without NUL, gives a limit from 1 to store.MaxLimit (the default when
// absent), and a cursor that decodes to page.After. Seeds live in
// testdata/fuzz/FuzzListQuery.
func FuzzListQuery(f *testing.F) {
	cursor := encodeCursor(store.PrefixLead + "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	for _, q := range []string{"", "limit=10", "limit=0", "limit=101", "limit=+5", "limit=1&limit=2", "cursor=" + cursor,
		"status=new&limit=100&cursor=" + cursor, "status=%00", "status=%ff", "nope=1", "a=%zz", "cursor=", "limit=", ";", "status"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest("GET", "/v1/leads", nil)
		r.URL.RawQuery = rawQuery
		page, filters, err := listQuery(r, store.PrefixLead, "status")
		q, qerr := url.ParseQuery(rawQuery)
		if err != nil {
			var e *apierror.Error
			if !errors.As(err, &e) || e.Code != apierror.InvalidRequest || e.HTTPStatus() != http.StatusBadRequest {
				t.Fatalf("listQuery(%q) = %v, want 400 INVALID_REQUEST", rawQuery, err)
			}
			if field, ok := e.Details["field"].(string); ok && qerr == nil && !q.Has(field) {
				t.Fatalf("listQuery(%q): field %q is not in the query", rawQuery, field)
			}
			return
		}
		if qerr != nil {
			t.Fatalf("listQuery(%q) accepted a query url.ParseQuery refuses: %v", rawQuery, qerr)
		}
		for name, vals := range q {
			switch {
			case name != "limit" && name != "cursor" && name != "status":
				t.Fatalf("listQuery(%q) accepted parameter %q", rawQuery, name)
			case len(vals) != 1 || !utf8.ValidString(vals[0]) || strings.IndexByte(vals[0], 0) >= 0:
				t.Fatalf("listQuery(%q) accepted %s=%q", rawQuery, name, vals)
			}
		}
		wantLimit := store.DefaultLimit
		if q.Has("limit") {
			wantLimit, _ = strconv.Atoi(q.Get("limit"))
		}
		if page.Limit != wantLimit || page.Limit < 1 || page.Limit > store.MaxLimit {
			t.Fatalf("listQuery(%q) limit %d, want %d", rawQuery, page.Limit, wantLimit)
		}
		if after, _ := decodeCursor(q.Get("cursor"), store.PrefixLead); page.After != after || q.Has("cursor") && after == "" {
			t.Fatalf("listQuery(%q) After %q, cursor %q decodes to %q", rawQuery, page.After, q.Get("cursor"), after)
		}
		if filters["status"] != q.Get("status") || len(filters) > 1 {
			t.Fatalf("listQuery(%q) filters %v", rawQuery, filters)
		}
	})
}

// FuzzParseTime checks parseTime, the reading of the date-times a request
// carries (started_at, ended_at, expires_at), on random text. Properties:
// it never panics; an accepted value is written as RFC 3339 §5.6 says
// (rfc3339Shape), is what time.Parse reads, in UTC, in years 0000–9999,
// and round-trips: written back with RFC3339Nano it parses to the same
// instant and form; a refusal gives the zero time; whatever the shape
// accepts and time.Parse reads within those years is accepted. Seeds live
// in testdata/fuzz/FuzzParseTime.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-22T10:00:00Z", "2026-11-22t10:00:00.123456789z", "2026-11-22T10:00:00+23:59",
		"0000-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-22T10:00:00+24:00", "2026-11-22T10:00:00,5Z",
		"2026-02-30T10:00:00Z", "2026-11-22T10:00:60Z", "2026-11-22 10:00:00Z", "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseTime(s)
		ref, refErr := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
		inRange := refErr == nil && ref.UTC().Year() >= 0 && ref.UTC().Year() <= 9999
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("parseTime(%q) refused (%v) with %v", s, err, got)
			}
			if rfc3339Shape(s) && inRange {
				t.Fatalf("parseTime(%q) refused (%v) what the shape and time.Parse (%v) accept", s, err, ref)
			}
			return
		}
		switch {
		case !rfc3339Shape(s) || refErr != nil || !got.Equal(ref):
			t.Fatalf("parseTime(%q) = %v; shape %v, time.Parse %v, %v", s, got, rfc3339Shape(s), ref, refErr)
		case got.Location() != time.UTC || !timeInRange(got):
			t.Fatalf("parseTime(%q) = %v, want UTC in years 0000-9999", s, got)
		}
		back := got.Format(time.RFC3339Nano)
		again, err := parseTime(back)
		if err != nil || again != got {
			t.Fatalf("parseTime(%q) = %v, written %q, which parses to %v, %v", s, got, back, again, err)
		}
	})
}

// e164 is E.164 as NormalizePhone documents it.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// FuzzNormalizePhone checks NormalizePhone on random text. Properties: it
// never panics; it accepts exactly the text that, without spaces, dashes,
// dots and parentheses and with a leading "00" read as "+", is "+" and 8
// to 15 digits not starting with 0, and returns that; what it returns is
// E.164 and normalises to itself; a refusal returns "". Seeds live in
// testdata/fuzz/FuzzNormalizePhone.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+14155550123", "+1 (415) 555-01.23", "0044 20 7946 0958", "+0123456789", "000123456789",
		"++14155550123", "+1415\t5550123", "+١٤١٥٥٥٥٠١٢٣", "00+14155550123", "+1415555\xff0123", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := NormalizePhone(s)
		stripped := strings.Map(func(r rune) rune {
			if strings.ContainsRune(" -.()", r) {
				return -1
			}
			return r
		}, s)
		want := stripped
		if rest, found := strings.CutPrefix(stripped, "00"); found {
			want = "+" + rest
		}
		if !e164.MatchString(want) {
			want = ""
		}
		if got != want || ok != (want != "") {
			t.Fatalf("NormalizePhone(%q) = %q, %v; want %q", s, got, ok, want)
		}
		if ok {
			if again, ok := NormalizePhone(got); !ok || again != got {
				t.Fatalf("NormalizePhone(%q) = %q, which normalises to %q, %v", s, got, again, ok)
			}
		}
	})
}

// FuzzValidEmail checks ValidEmail on random text. Properties: it never
// panics; an accepted address is at most MaxEmailLen bytes of valid UTF-8
// with no ASCII control character, space or NUL (which no store can
// hold), is the address net/mail parses from it, and has a domain of at
// least two non-empty labels of letters, combining marks, digits, inner
// hyphens and IDNA2008's contextual punctuation (see contextO), nothing
// else. (The local part is net/mail's: RFC 6532
// lets it hold any non-ASCII character.) Seeds live in
// testdata/fuzz/FuzzValidEmail.
func FuzzValidEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "ädä@exämple.de", "Ada <ada@example.com>", `"ada lovelace"@example.com`,
		`"a@b"@example.com`, "ada@[192.0.2.1]", "ada@example..com", "ada@-example.com", "a\x00@example.com", "ada@example.com\n",
		strings.Repeat("a", 250) + "@x.com", "ada@ex\xffample.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidEmail(s) {
			return
		}
		at := strings.LastIndexByte(s, '@')
		addr, err := mail.ParseAddress(s)
		switch {
		case len(s) > MaxEmailLen || !utf8.ValidString(s) || at <= 0:
			t.Fatalf("ValidEmail(%q): length %d, UTF-8 %v, @ at %d", s, len(s), utf8.ValidString(s), at)
		case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			t.Fatalf("ValidEmail(%q) accepted a control character or a space", s)
		case err != nil || addr.Address != s:
			t.Fatalf("ValidEmail(%q): net/mail reads %v, %v", s, addr, err)
		}
		labels := strings.Split(s[at+1:], ".")
		if len(labels) < 2 {
			t.Fatalf("ValidEmail(%q): domain of one label", s)
		}
		for _, l := range labels {
			if l == "" || strings.HasPrefix(l, "-") || strings.HasSuffix(l, "-") ||
				strings.ContainsFunc(l, func(r rune) bool {
					return !unicode.In(r, unicode.L, unicode.M, unicode.Nd) && r != '-' && !strings.ContainsRune("\u00b7\u0375\u05f3\u05f4\u30fb", r)
				}) {
				t.Fatalf("ValidEmail(%q): domain label %q", s, l)
			}
		}
	})
}
