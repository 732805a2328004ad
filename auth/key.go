// Package auth holds the API-key primitives of tollgate: the key format, its
// hashing, scopes, the authenticated Principal carried in a context, and a
// caching Verifier in front of a KeyStore.
//
// It knows nothing of HTTP; the middleware maps its errors to responses.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
)

// Key prefixes. A live key and a test key differ only in their prefix.
const (
	PrefixLive = "tg_live_"
	PrefixTest = "tg_test_"
)

const (
	prefixLen = len(PrefixLive) // both prefixes have the same length
	// RandomLen is the number of base62 characters drawn from crypto/rand
	// (≈190 bits of entropy).
	RandomLen = 32
	// ChecksumLen is the number of base62 characters of the CRC32 checksum.
	ChecksumLen = 6
	// KeyLen is the length of every key: prefix, random part and checksum.
	KeyLen = prefixLen + RandomLen + ChecksumLen
	// startLen is the length of the display start: prefix and 4 characters.
	startLen = prefixLen + 4
)

// alphabet is base62 in ASCII order: digits, upper case, lower case.
const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Errors returned by ParseKey and Verifier.Verify. They are returned wrapped
// or as is; test them with errors.Is.
var (
	// ErrMissing means no key was presented.
	ErrMissing = errors.New("auth: key missing")
	// ErrMalformed means the key has the wrong length, prefix, characters or
	// checksum. It is decided without any store lookup.
	ErrMalformed = errors.New("auth: key malformed")
	// ErrUnknown means the key is well formed but no stored key has its hash.
	ErrUnknown = errors.New("auth: key unknown")
	// ErrRevoked means the key was revoked.
	ErrRevoked = errors.New("auth: key revoked")
	// ErrExpired means the key's expiry has passed.
	ErrExpired = errors.New("auth: key expired")
	// ErrUnavailable means the key store failed; the cause is wrapped too.
	// It is not a judgement on the key: callers answer 503, not 401.
	ErrUnavailable = errors.New("auth: key store unavailable")
)

// Reasons a key is malformed. They are preallocated so that rejecting
// garbage does not allocate.
var (
	errLength   = fmt.Errorf("%w: wrong length", ErrMalformed)
	errPrefix   = fmt.Errorf("%w: unknown prefix", ErrMalformed)
	errCharset  = fmt.Errorf("%w: character outside base62", ErrMalformed)
	errChecksum = fmt.Errorf("%w: checksum mismatch", ErrMalformed)
)

// Parsed is a key that passed ParseKey. Its fields are substrings of the key.
type Parsed struct {
	Prefix   string // PrefixLive or PrefixTest
	Random   string // the RandomLen base62 characters
	Checksum string // the ChecksumLen base62 characters
}

// Live reports whether the key is a live key (not a test key).
func (p Parsed) Live() bool { return p.Prefix == PrefixLive }

// NewKey returns a new secret key: the live or test prefix, RandomLen base62
// characters from crypto/rand and a base62 CRC32 checksum. The secret is
// shown to its owner once; store only Hash(secret) and Start(secret).
// It is safe for concurrent use.
func NewKey(live bool) (string, error) {
	prefix := PrefixTest
	if live {
		prefix = PrefixLive
	}
	var b [KeyLen]byte
	copy(b[:], prefix)
	// Rejection sampling keeps every character uniform: bytes ≥ 248
	// (4 × 62) are dropped instead of folded.
	var buf [64]byte
	n := prefixLen
	for n < prefixLen+RandomLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("auth: new key: %w", err)
		}
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b[n] = alphabet[c%62]
			n++
			if n == prefixLen+RandomLen {
				break
			}
		}
	}
	putChecksum(b[prefixLen+RandomLen:], checksum(string(b[:prefixLen+RandomLen])))
	return string(b[:]), nil
}

// ParseKey checks the length, prefix, character set and checksum of s, in
// that order, without any store lookup. Every failure wraps ErrMalformed
// (ErrMissing when s is empty). It does not allocate.
func ParseKey(s string) (Parsed, error) {
	if s == "" {
		return Parsed{}, ErrMissing
	}
	if len(s) != KeyLen {
		return Parsed{}, errLength
	}
	prefix := s[:prefixLen]
	if prefix != PrefixLive && prefix != PrefixTest {
		return Parsed{}, errPrefix
	}
	for i := prefixLen; i < KeyLen; i++ {
		if !isBase62(s[i]) {
			return Parsed{}, errCharset
		}
	}
	var want [ChecksumLen]byte
	putChecksum(want[:], checksum(s[:prefixLen+RandomLen]))
	if string(want[:]) != s[prefixLen+RandomLen:] {
		return Parsed{}, errChecksum
	}
	return Parsed{
		Prefix:   prefix,
		Random:   s[prefixLen : prefixLen+RandomLen],
		Checksum: s[prefixLen+RandomLen:],
	}, nil
}

// Hash returns the SHA-256 digest of secret, the only form in which a key
// is stored and looked up.
func Hash(secret string) [32]byte {
	if len(secret) == KeyLen {
		return hashKey(secret)
	}
	return sha256.Sum256([]byte(secret))
}

// hashKey hashes a KeyLen string through a stack buffer, so that the hot path
// does not allocate.
func hashKey(secret string) [32]byte {
	var b [KeyLen]byte
	copy(b[:], secret)
	return sha256.Sum256(b[:])
}

// Start returns the display start of a key: its prefix and the first four
// characters of the random part, e.g. "tg_live_a1B2". It never returns more
// than that, whatever it is given.
func Start(secret string) string {
	if len(secret) < startLen {
		return ""
	}
	return secret[:startLen]
}

// Mentions reports whether s holds what may be an API key: a key's prefix
// anywhere in it ("Bearer tg_live_…" included). Use it to refuse text
// that must not carry a key, such as a query string or a request id.
func Mentions(s string) bool {
	return strings.Contains(s, PrefixLive) || strings.Contains(s, PrefixTest)
}

// Redact returns s with the secret part of anything in it that starts like
// a key (a prefix and the base62 characters after it) replaced by
// "[REDACTED]", for text that is logged, such as a request path. s is
// returned as it is, without allocating, when it mentions no key.
func Redact(s string) string {
	if !strings.Contains(s, "tg_") {
		return s // the common case
	}
	var b strings.Builder
	for {
		i := min(indexOr(s, PrefixLive), indexOr(s, PrefixTest))
		if i == len(s) {
			b.WriteString(s)
			return b.String()
		}
		j := i + prefixLen
		b.WriteString(s[:j])
		k := j
		for k < len(s) && isBase62(s[k]) {
			k++
		}
		if k > j {
			b.WriteString("[REDACTED]")
		}
		s = s[k:]
	}
}

// indexOr is strings.Index, or len(s) when sub is not in s.
func indexOr(s, sub string) int {
	if i := strings.Index(s, sub); i >= 0 {
		return i
	}
	return len(s)
}

// base62Set marks the bytes of alphabet; it is read-only after init.
var base62Set = func() (set [256]bool) {
	for i := 0; i < len(alphabet); i++ {
		set[alphabet[i]] = true
	}
	return set
}()

func isBase62(c byte) bool { return base62Set[c] }

// crcTables are the slicing-by-8 tables of CRC-32 (IEEE); read-only after
// init. crcTables[0] is crc32.IEEETable.
var crcTables = func() *[8][256]uint32 {
	t := new([8][256]uint32)
	t[0] = *crc32.IEEETable
	for i := range 256 {
		for k := 1; k < 8; k++ {
			prev := t[k-1][i]
			t[k][i] = prev>>8 ^ t[0][prev&0xFF]
		}
	}
	return t
}()

// checksum is CRC-32 (IEEE) of s, computed over the string directly (so no
// []byte conversion, and no allocation), eight bytes at a time.
func checksum(s string) uint32 {
	t := crcTables
	crc := ^uint32(0)
	for len(s) >= 8 {
		crc ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		crc = t[0][s[7]] ^ t[1][s[6]] ^ t[2][s[5]] ^ t[3][s[4]] ^
			t[4][crc>>24] ^ t[5][crc>>16&0xFF] ^ t[6][crc>>8&0xFF] ^ t[7][crc&0xFF]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		crc = t[0][byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}

// putChecksum writes c in base62 into dst (ChecksumLen bytes), most
// significant digit first, left-padded with '0'. 62^6 > 2^32, so it fits.
func putChecksum(dst []byte, c uint32) {
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[c%62]
		c /= 62
	}
}
