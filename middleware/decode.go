package middleware

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/tollgate-dev/tollgate/apierror"
)

// DefaultMaxDepth is the deepest nesting of objects and arrays DecodeJSON
// accepts unless told otherwise.
const DefaultMaxDepth = 32

// DecodeOptions tune DecodeJSON.
type DecodeOptions struct {
	// Required lists top-level members that must be present and not null.
	Required []string
	// MaxDepth bounds nesting; 0 means DefaultMaxDepth.
	MaxDepth int
	// AllowNUL accepts strings holding U+0000 (written \u0000 in JSON),
	// which are refused by default: PostgreSQL's text and jsonb cannot
	// store them, and no text a person writes holds one.
	AllowNUL bool
	// Optional makes the body optional: an empty one (no bytes, or only
	// JSON's white space, whatever its framing or Content-Type) leaves v
	// as it is and is no error.
	Optional bool
}

// DecodeJSON reads r's body strictly into v and returns an *apierror.Error
// for the client when it cannot:
//
//   - 415 UNSUPPORTED_MEDIA_TYPE when Content-Type is not JSON;
//   - 413 PAYLOAD_TOO_LARGE past BodyLimit's limit;
//   - 400 INVALID_REQUEST for an empty body, invalid UTF-8, nesting deeper
//     than MaxDepth, a syntax error (details.offset), a duplicate member,
//     trailing data, a value of the wrong type (details.field), an unknown
//     member (details.field), a body that is not an object, or a string
//     holding U+0000 (details.field; unless AllowNUL);
//   - 400 MISSING_FIELD "Missing required field: <name>" for an absent or
//     null required member;
//   - 400 VALIDATION_ERROR for an integer too large for its Go field, or
//     too small for a signed one (details.field, details.reason "Must be
//     at most N" or "Must be at least N"); a negative number for an
//     unsigned field is a wrong type, 400 INVALID_REQUEST.
func DecodeJSON(r *http.Request, v any, opts DecodeOptions) error {
	if opts.Optional {
		data, err := readAll(r)
		if err != nil || len(bytes.Trim(data, " \t\r\n")) == 0 { // JSON's white space only
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(data))
		opts.Optional = false
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return apierror.New(apierror.UnsupportedMediaType, "The request body must be JSON (Content-Type: application/json).").
			With("supported", []string{"application/json"})
	}
	if r.Body == nil {
		return bad("", "The request body is required.", "empty body")
	}
	data, err := readAll(r)
	if err != nil {
		return err
	}
	return Unmarshal(data, v, opts)
}

// readAll reads r's body (nil reads as empty), mapping a read error to
// 413 past BodyLimit's limit or 400 "unreadable body".
func readAll(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return nil, apierror.From(err) // 413 with details.limit_bytes
		}
		return nil, apierror.Wrap(err, apierror.InvalidRequest, "The request body could not be read.").With("reason", "unreadable body")
	}
	return data, nil
}

// Unmarshal is DecodeJSON for a body already read.
func Unmarshal(data []byte, v any, opts DecodeOptions) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return bad("", "The request body is required.", "empty body")
	}
	if !utf8.Valid(data) {
		return bad("", "The request body is not valid UTF-8.", "invalid UTF-8")
	}
	maxDepth := opts.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if depth(data) > maxDepth {
		return bad("", fmt.Sprintf("The request body nests deeper than %d levels.", maxDepth), "too deep").With("max_depth", maxDepth)
	}
	var top map[string]jsontext.Value
	if err := json.Unmarshal(data, &top); err != nil {
		var serr *json.SemanticError
		if errors.As(err, &serr) && serr.JSONPointer == "" {
			return bad("", "The request body must be a JSON object.", "not an object")
		}
		return mapError(err)
	}
	if top == nil {
		return bad("", "The request body must be a JSON object.", "not an object")
	}
	// A body that cannot be read as the request (a NUL, an unknown member,
	// a wrong type) is INVALID_REQUEST before any member is missing.
	if !opts.AllowNUL {
		if field, ok := findNUL(data); ok {
			return bad(field, "Text must not contain the NUL character (U+0000).", "NUL character")
		}
	}
	if err := json.Unmarshal(data, v, json.RejectUnknownMembers(true)); err != nil {
		return mapError(err)
	}
	for _, name := range opts.Required {
		if val, ok := top[name]; !ok || val.Kind() == 'n' {
			return apierror.New(apierror.MissingField, "Missing required field: "+name).With("field", name)
		}
	}
	return nil
}

// findNUL reports whether a string of data, a valid JSON object, holds
// U+0000, and the dotted path of the member it is in (or is). Only an
// escape can write it (JSON forbids a raw control character in a string),
// so a body without the text \u0000 is skipped at once.
func findNUL(data []byte) (field string, ok bool) {
	if !bytes.Contains(data, []byte(`\u0000`)) {
		return "", false
	}
	d := jsontext.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := d.ReadToken()
		if err != nil {
			return "", false // syntax errors are Unmarshal's to report
		}
		if tok.Kind() == '"' && strings.IndexByte(tok.String(), 0) >= 0 {
			return fieldName(d.StackPointer()), true
		}
	}
}

func bad(field, message, reason string) *apierror.Error {
	e := apierror.New(apierror.InvalidRequest, message).With("reason", reason)
	if field != "" {
		e.With("field", field)
	}
	return e
}

// mapError turns a json error into INVALID_REQUEST with details.
func mapError(err error) *apierror.Error {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		field := fieldName(syn.JSONPointer)
		if errors.Is(syn.Err, jsontext.ErrDuplicateName) {
			return apierror.Wrap(err, apierror.InvalidRequest, "Duplicate field: "+field+".").
				With("field", field).With("reason", "duplicate field")
		}
		msg := syn.Err.Error()
		if strings.Contains(msg, "after top-level value") {
			return apierror.Wrap(err, apierror.InvalidRequest, "Unexpected data after the JSON value.").
				With("reason", "trailing data").With("offset", syn.ByteOffset)
		}
		return apierror.Wrap(err, apierror.InvalidRequest, fmt.Sprintf("Invalid JSON at byte offset %d.", syn.ByteOffset)).
			With("reason", "syntax error").With("offset", syn.ByteOffset)
	case errors.As(err, &sem):
		field := fieldName(sem.JSONPointer)
		if errors.Is(sem.Err, json.ErrUnknownName) {
			return apierror.Wrap(err, apierror.InvalidRequest, "Unknown field: "+field+".").
				With("field", field).With("reason", "unknown field")
		}
		if errors.Is(sem.Err, strconv.ErrRange) && field != "" {
			// An integer, but too large for its field: a value breaking a
			// range rule, not a wrong type.
			reason := rangeReason(sem.GoType, strings.HasPrefix(string(sem.JSONValue), "-"))
			return apierror.Wrap(err, apierror.ValidationError, "Field "+field+": "+reason+".").
				With("field", field).With("reason", reason)
		}
		want := "a valid value"
		if t := sem.GoType; t != nil {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			want = kindName(t.Kind().String())
			if t == timeType {
				want = "an RFC 3339 date-time string"
			}
		}
		e := apierror.Wrap(err, apierror.InvalidRequest, "Field "+field+" must be "+want+".").
			With("reason", "wrong type").With("expected", want)
		if field != "" {
			e.With("field", field)
		}
		return e
	}
	return apierror.Wrap(err, apierror.InvalidRequest, "The request body is not valid JSON.").With("reason", "invalid JSON")
}

// rangeReason says which bound of integer type t a value overflowed:
// "Must be at most N" (or "at least N" for a negative value).
func rangeReason(t reflect.Type, negative bool) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "Out of range"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if negative {
			return "Must be at least " + strconv.FormatInt(-1<<(t.Bits()-1), 10)
		}
		return "Must be at most " + strconv.FormatInt(1<<(t.Bits()-1)-1, 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		// A negative number never gets here: json reports it as a
		// wrong type for an unsigned field.
		return "Must be at most " + strconv.FormatUint(^uint64(0)>>(64-t.Bits()), 10)
	}
	return "Out of range"
}

// fieldName renders a JSON pointer as a dotted field path: /a/0/b → a.0.b.
func fieldName(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	name := strings.Join(parts, ".")
	if len(name) > 128 {
		name = name[:128]
	}
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	return name
}

// timeType is time.Time, which JSON carries as an RFC 3339 string, not
// as the struct it is in Go.
var timeType = reflect.TypeFor[time.Time]()

func kindName(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a valid value"
}

// depth returns the deepest nesting of arrays and objects in data,
// ignoring brackets inside strings.
func depth(data []byte) int {
	d, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			deepest = max(deepest, d)
		case c == '}' || c == ']':
			d--
		}
	}
	return deepest
}
