package apierror

import (
	"encoding/json"
	"slices"
	"strconv"
)

// maxFastDetails is the most details appendEnvelope sorts on the stack.
const maxFastDetails = 16

// member is one details member that Write adds to an error's own.
type member struct {
	key   string
	value any
}

// appendEnvelope appends the envelope of code, message and details to b
// exactly as json.Marshal would encode it (keys sorted, HTML characters
// escaped), without reflection: error answers are a hot path when a server
// refuses a flood (429, 503 overloaded, 401). The members of extra are
// encoded as if they were in details, replacing a member of the same key
// (Write adds request_id this way, without copying the error's details).
// It reports false, having appended nothing, when a detail value is of a
// type it does not encode (anything but strings, integers, booleans and
// string slices), so that the caller falls back to json.Marshal.
func appendEnvelope(b []byte, code Code, message string, details Details, extra []member, success bool) ([]byte, bool) {
	if len(details)+len(extra) > maxFastDetails {
		return b, false
	}
	var kbuf [maxFastDetails]string
	keys := kbuf[:0]
	for k, v := range details {
		if indexMember(extra, k) >= 0 {
			continue
		}
		if !encodable(v) {
			return b, false
		}
		keys = append(keys, k)
	}
	for _, m := range extra {
		if !encodable(m.value) {
			return b, false
		}
		keys = append(keys, m.key)
	}
	slices.Sort(keys)
	if success {
		b = append(b, `{"success":false,"error":{"code":`...)
	} else {
		b = append(b, `{"error":{"code":`...)
	}
	b = appendJSONString(b, string(code))
	b = append(b, `,"message":`...)
	b = appendJSONString(b, message)
	if details == nil && len(extra) == 0 {
		return append(b, `,"details":null}}`...), true
	}
	b = append(b, `,"details":{`...)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		var v any
		if j := indexMember(extra, k); j >= 0 {
			v = extra[j].value
		} else {
			v = details[k]
		}
		switch v := v.(type) {
		case string:
			b = appendJSONString(b, v)
		case Code:
			b = appendJSONString(b, string(v))
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		case []string:
			if v == nil {
				b = append(b, "null"...)
				break
			}
			b = append(b, '[')
			for j, s := range v {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, s)
			}
			b = append(b, ']')
		}
	}
	return append(b, "}}}"...), true
}

// encodable reports whether appendEnvelope encodes v itself.
func encodable(v any) bool {
	switch v.(type) {
	case string, Code, int, int64, bool, []string:
		return true
	}
	return false
}

func indexMember(ms []member, key string) int {
	for i := range ms {
		if ms[i].key == key {
			return i
		}
	}
	return -1
}

// appendJSONString appends s as encoding/json encodes a string. Strings of
// printable ASCII without '"', '\\', '<', '>' and '&' are quoted as they
// are; any other goes through encoding/json, so the escaping rules (HTML
// characters, U+2028, invalid UTF-8) stay exactly its own.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// jsonPlain marks the bytes appendJSONString copies as they are: printable
// ASCII but '"', '\\', '<', '>' and '&'. One table load per byte is
// cheaper than the seven comparisons. Read-only after init.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
