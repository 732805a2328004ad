package auth_test

import (
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/auth"
)

func TestNewKeyFormat(t *testing.T) {
	seen := make(map[string]bool)
	for _, live := range []bool{true, false} {
		for range 200 {
			k, err := auth.NewKey(live)
			if err != nil {
				t.Fatalf("NewKey(%v): %v", live, err)
			}
			if len(k) != auth.KeyLen {
				t.Fatalf("len(NewKey(%v)) = %d, want %d", live, len(k), auth.KeyLen)
			}
			wantPrefix := auth.PrefixTest
			if live {
				wantPrefix = auth.PrefixLive
			}
			p, err := auth.ParseKey(k)
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", k, err)
			}
			if p.Prefix != wantPrefix || p.Live() != live {
				t.Errorf("ParseKey(%q) prefix %q live %v, want %q %v", k, p.Prefix, p.Live(), wantPrefix, live)
			}
			if len(p.Random) != auth.RandomLen || len(p.Checksum) != auth.ChecksumLen {
				t.Errorf("ParseKey(%q) = %+v: bad part lengths", k, p)
			}
			if seen[k] {
				t.Fatalf("NewKey returned %q twice", k)
			}
			seen[k] = true
		}
	}
}

func TestNewKeyUsesWholeAlphabet(t *testing.T) {
	// 300 keys × 32 chars: every one of the 62 characters should appear.
	counts := make(map[rune]int)
	for range 300 {
		k, err := auth.NewKey(true)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := auth.ParseKey(k)
		for _, c := range p.Random {
			counts[c]++
		}
	}
	if len(counts) != 62 {
		t.Errorf("random parts used %d distinct characters, want 62", len(counts))
	}
}

func TestChecksumMatchesCRC32(t *testing.T) {
	var inputs []string
	for n := range 100 {
		inputs = append(inputs, strings.Repeat("tg_live_Zz09", 10)[:n])
	}
	for _, s := range inputs {
		if got, want := auth.Checksum(s), crc32.ChecksumIEEE([]byte(s)); got != want {
			t.Errorf("checksum(%q) = %d, want %d", s, got, want)
		}
	}
}

// knownKey is a fixed valid key: its checksum was computed independently
// as base62(crc32.ChecksumIEEE(prefix+random)), left-padded to 6.
func knownKey(t *testing.T) string {
	t.Helper()
	body := "tg_live_" + "0123456789abcdefghijABCDEFGHIJxy"
	c := crc32.ChecksumIEEE([]byte(body))
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = alphabet[c%62]
		c /= 62
	}
	return body + string(sum)
}

func TestParseKey(t *testing.T) {
	valid := knownKey(t)
	tests := []struct {
		name    string
		key     string
		wantErr error
	}{
		{name: "valid live", key: valid},
		{name: "empty", key: "", wantErr: auth.ErrMissing},
		{name: "short", key: valid[:len(valid)-1], wantErr: auth.ErrMalformed},
		{name: "long", key: valid + "0", wantErr: auth.ErrMalformed},
		{name: "unknown prefix", key: "tg_prod_" + valid[8:], wantErr: auth.ErrMalformed},
		{name: "upper-case prefix", key: "TG_LIVE_" + valid[8:], wantErr: auth.ErrMalformed},
		{name: "test prefix, live checksum", key: "tg_test_" + valid[8:], wantErr: auth.ErrMalformed},
		{name: "non-base62 char", key: valid[:10] + "-" + valid[11:], wantErr: auth.ErrMalformed},
		{name: "non-ascii", key: valid[:10] + "é" + valid[12:], wantErr: auth.ErrMalformed},
		{name: "bad checksum", key: valid[:len(valid)-1] + flip(valid[len(valid)-1]), wantErr: auth.ErrMalformed},
		{name: "whitespace", key: " " + valid[1:], wantErr: auth.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := auth.ParseKey(tt.key)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseKey(%q) error = %v, want %v", tt.key, err, tt.wantErr)
			}
			if err == nil && tt.key[:8]+p.Random+p.Checksum != tt.key {
				t.Errorf("ParseKey(%q) = %+v, parts do not rebuild the key", tt.key, p)
			}
		})
	}
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// TestParseKeyRejectsEverySingleSubstitution: CRC-32 detects every error
// burst of up to 32 bits, so no one-character change passes.
func TestParseKeyRejectsEverySingleSubstitution(t *testing.T) {
	k, err := auth.NewKey(false)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	for i := 8; i < len(k); i++ {
		for j := 0; j < len(alphabet); j++ {
			if alphabet[j] == k[i] {
				continue
			}
			m := k[:i] + alphabet[j:j+1] + k[i+1:]
			if _, err := auth.ParseKey(m); !errors.Is(err, auth.ErrMalformed) {
				t.Fatalf("ParseKey(%q) (changed at %d) error = %v, want ErrMalformed", m, i, err)
			}
		}
	}
}

func TestHashAndStart(t *testing.T) {
	k := knownKey(t)
	h := auth.Hash(k)
	if h != auth.Hash(k) || h == auth.Hash(k[:len(k)-1]) {
		t.Error("Hash is not a function of the whole key")
	}
	if got, want := auth.Start(k), "tg_live_0123"; got != want {
		t.Errorf("Start(%q) = %q, want %q", k, got, want)
	}
	if got := auth.Start("tg_"); got != "" {
		t.Errorf("Start(short) = %q, want empty", got)
	}
}

func TestParseKeyAllocs(t *testing.T) {
	k := knownKey(t)
	for _, s := range []string{k, k[:10], "tg_xxxx_" + k[8:], k[:len(k)-1] + "!", k[:len(k)-1] + flip(k[len(k)-1])} {
		if n := testing.AllocsPerRun(100, func() { _, _ = auth.ParseKey(s) }); n != 0 {
			t.Errorf("ParseKey(%q) allocs = %v, want 0", s, n)
		}
	}
}

func TestRedactAndMentions(t *testing.T) {
	live, test := mustKey(t, true), mustKey(t, false)
	tests := []struct {
		in, want string
		mentions bool
	}{
		{"/v1/keys/key_01", "/v1/keys/key_01", false},
		{"/v1/keys/" + live, "/v1/keys/tg_live_[REDACTED]", true},
		{"/x/" + live + "/y/" + test + "?z", "/x/tg_live_[REDACTED]/y/tg_test_[REDACTED]?z", true},
		{"Bearer " + live, "Bearer tg_live_[REDACTED]", true},
		{"tg_live_", "tg_live_", true},
		{"tg_other", "tg_other", false},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := auth.Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if got := auth.Mentions(tt.in); got != tt.mentions {
				t.Errorf("Mentions(%q) = %v, want %v", tt.in, got, tt.mentions)
			}
		})
	}
}
