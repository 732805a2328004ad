package ratelimit_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ratelimit.Policy
		str     string // String() of the result; "" means in
		wantErr bool
	}{
		{name: "per minute", in: "600/1m", want: ratelimit.Policy{Limit: 600, Window: time.Minute}},
		{name: "hundred per minute", in: "100/1m", want: ratelimit.Policy{Limit: 100, Window: time.Minute}},
		{name: "per second", in: "10/1s", want: ratelimit.Policy{Limit: 10, Window: time.Second}},
		{name: "per day", in: "10000/1d", want: ratelimit.Policy{Limit: 10000, Window: 24 * time.Hour}},
		{name: "bare unit", in: "10/s", want: ratelimit.Policy{Limit: 10, Window: time.Second}, str: "10/1s"},
		{name: "milliseconds", in: "5/250ms", want: ratelimit.Policy{Limit: 5, Window: 250 * time.Millisecond}},
		{name: "bare hour", in: "10/h", want: ratelimit.Policy{Limit: 10, Window: time.Hour}, str: "10/1h"},
		{name: "bare millisecond unit", in: "10/ms", want: ratelimit.Policy{Limit: 10, Window: time.Millisecond}, str: "10/1ms"},
		{name: "bare day", in: "10/d", want: ratelimit.Policy{Limit: 10, Window: 24 * time.Hour}, str: "10/1d"},
		{name: "fraction of a second", in: "10/.5s", want: ratelimit.Policy{Limit: 10, Window: 500 * time.Millisecond}, str: "10/500ms"},
		{name: "fraction of a minute", in: "3/.5m", want: ratelimit.Policy{Limit: 3, Window: 30 * time.Second}, str: "3/30s"},
		{name: "compound duration", in: "3/1m30s", want: ratelimit.Policy{Limit: 3, Window: 90 * time.Second}, str: "3/90s"},
		{name: "hours normalised", in: "1/48h", want: ratelimit.Policy{Limit: 1, Window: 48 * time.Hour}, str: "1/2d"},
		{name: "burst", in: "10/1s;burst=20", want: ratelimit.Policy{Limit: 10, Window: time.Second, Burst: 20}},
		{name: "burst equal to limit", in: "10/1s;burst=10", want: ratelimit.Policy{Limit: 10, Window: time.Second, Burst: 10}, str: "10/1s"},
		{name: "spaces", in: " 10 / 1m ", want: ratelimit.Policy{Limit: 10, Window: time.Minute}, str: "10/1m"},
		{name: "no slash", in: "10", wantErr: true},
		{name: "zero limit", in: "0/1m", wantErr: true},
		{name: "negative limit", in: "-1/1m", wantErr: true},
		{name: "zero window", in: "1/0s", wantErr: true},
		{name: "bad window", in: "1/1x", wantErr: true},
		{name: "empty window", in: "1/", wantErr: true},
		{name: "zero burst", in: "1/1s;burst=0", wantErr: true},
		{name: "bad burst key", in: "1/1s;b=2", wantErr: true},
		{name: "tolerance too large", in: "1/36500d", wantErr: true},
		// The days' own bound is the Duration's range: the tolerance
		// decides, as for hours.
		{name: "long window, small burst, in days", in: "10/13400d;burst=1", want: ratelimit.Policy{Limit: 10, Window: 13400 * 24 * time.Hour, Burst: 1}},
		{name: "the same in hours", in: "10/321600h;burst=1", want: ratelimit.Policy{Limit: 10, Window: 13400 * 24 * time.Hour, Burst: 1}, str: "10/13400d;burst=1"},
		{name: "days overflowing a Duration", in: "1/106752d;burst=1", wantErr: true},
		{name: "fraction without a unit", in: "10/.5", wantErr: true},
		{name: "unknown unit", in: "10/sec", wantErr: true},
		// Far more units than nanoseconds in the window: every store rounds
		// the interval up to one of its units and decides.
		{name: "limit beyond the window's nanoseconds", in: "9223372036854775807/1s;burst=1",
			want: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second, Burst: 1}},
		// Fine in nanoseconds (2^51 ns), but 2^51 µs once the interval is
		// rounded up to the Redis store's microsecond.
		{name: "tolerance too large in microseconds", in: "1/1ns;burst=2251799813685248", wantErr: true},
		{name: "limit overflows", in: "9223372036854775808/1s", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ratelimit.ParsePolicy(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParsePolicy(%q) = %+v, want error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy(%q) error: %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParsePolicy(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got.String() != str {
				t.Errorf("ParsePolicy(%q).String() = %q, want %q", tt.in, got.String(), str)
			}
			back, err := ratelimit.ParsePolicy(got.String())
			if err != nil || back.Limit != got.Limit || back.Window != got.Window || back.Capacity() != got.Capacity() {
				t.Errorf("ParsePolicy(%q) = %+v, %v: does not round-trip %+v", got.String(), back, err, got)
			}
		})
	}
}

func TestFormatWindow(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"minute", time.Minute, "1m"},
		{"second", time.Second, "1s"},
		{"hour", time.Hour, "1h"},
		{"day", 24 * time.Hour, "1d"},
		{"week", 7 * 24 * time.Hour, "7d"},
		{"90 minutes", 90 * time.Minute, "90m"},
		{"milliseconds", 1500 * time.Millisecond, "1500ms"},
		{"nanoseconds", 1500, "1.5µs"},
		{"zero", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratelimit.FormatWindow(tt.in); got != tt.want {
				t.Errorf("FormatWindow(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestPolicyInterval(t *testing.T) {
	tests := []struct {
		name string
		p    ratelimit.Policy
		want time.Duration
	}{
		{"exact", ratelimit.Policy{Limit: 10, Window: time.Second}, 100 * time.Millisecond},
		{"rounded up", ratelimit.Policy{Limit: 3, Window: time.Second}, 333333334},
		{"below a nanosecond", ratelimit.Policy{Limit: 10, Window: 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Interval(); got != tt.want {
				t.Errorf("%+v.Interval() = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

// TestPolicyShape: the interval and tolerance every store works with come
// from Shape, rounded up to the store's unit and free of overflow, and
// Validate refuses exactly what some store's unit cannot represent.
func TestPolicyShape(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name          string
		p             ratelimit.Policy
		unit          time.Duration
		wantInterval  int64
		wantTolerance int64
		wantErr       bool
	}{
		{name: "exact in ns", p: ratelimit.Policy{Limit: 10, Window: time.Second}, unit: time.Nanosecond, wantInterval: 1e8, wantTolerance: 1e9},
		{name: "exact in µs", p: ratelimit.Policy{Limit: 10, Window: time.Second}, unit: us, wantInterval: 1e5, wantTolerance: 1e6},
		{name: "rounded up in ns", p: ratelimit.Policy{Limit: 7, Window: time.Minute}, unit: time.Nanosecond, wantInterval: 8571428572, wantTolerance: 7 * 8571428572},
		{name: "rounded up in µs", p: ratelimit.Policy{Limit: 7, Window: time.Minute}, unit: us, wantInterval: 8571429, wantTolerance: 7 * 8571429},
		{name: "burst", p: ratelimit.Policy{Limit: 10, Window: time.Minute, Burst: 20}, unit: us, wantInterval: 6e6, wantTolerance: 120e6},
		{name: "below one unit", p: ratelimit.Policy{Limit: 10, Window: 3}, unit: us, wantInterval: 1, wantTolerance: 10},
		{name: "huge limit in ns", p: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second, Burst: 1}, unit: time.Nanosecond, wantInterval: 1, wantTolerance: 1},
		{name: "huge limit in µs", p: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second, Burst: 1}, unit: us, wantInterval: 1, wantTolerance: 1},
		{name: "largest tolerance", p: ratelimit.Policy{Limit: 1, Window: ratelimit.MaxTolerance / us * us}, unit: us,
			wantInterval: int64(ratelimit.MaxTolerance / us), wantTolerance: int64(ratelimit.MaxTolerance / us)},
		{name: "huge limit, default burst", p: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second}, unit: time.Nanosecond, wantErr: true},
		{name: "tolerance product overflows", p: ratelimit.Policy{Limit: 1, Window: time.Hour, Burst: math.MaxInt64}, unit: time.Nanosecond, wantErr: true},
		{name: "tolerance over the bound in µs only", p: ratelimit.Policy{Limit: 1, Window: 1, Burst: 1 << 51}, unit: us, wantErr: true},
		{name: "window above the bound", p: ratelimit.Policy{Limit: 1, Window: ratelimit.MaxTolerance + 1}, unit: time.Nanosecond, wantErr: true},
		{name: "zero limit", p: ratelimit.Policy{Window: time.Second}, unit: time.Nanosecond, wantErr: true},
		{name: "zero unit", p: ratelimit.Policy{Limit: 1, Window: time.Second}, unit: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			interval, tolerance, err := tt.p.Shape(tt.unit)
			if tt.wantErr {
				if err == nil {
					t.Errorf("%+v.Shape(%v) = %d, %d, want error", tt.p, tt.unit, interval, tolerance)
				}
				return
			}
			if err != nil || interval != tt.wantInterval || tolerance != tt.wantTolerance {
				t.Errorf("%+v.Shape(%v) = %d, %d, %v; want %d, %d", tt.p, tt.unit, interval, tolerance, err, tt.wantInterval, tt.wantTolerance)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       ratelimit.Policy
		wantErr bool
	}{
		{name: "plain", p: ratelimit.Policy{Limit: 100, Window: time.Minute}},
		{name: "sub-nanosecond interval", p: ratelimit.Policy{Limit: 10, Window: 3}},
		{name: "huge limit with a small burst", p: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second, Burst: 1}},
		{name: "largest tolerance", p: ratelimit.Policy{Limit: 1, Window: ratelimit.MaxTolerance / time.Microsecond * time.Microsecond}},
		{name: "negative burst", p: ratelimit.Policy{Limit: 1, Window: time.Second, Burst: -1}, wantErr: true},
		{name: "huge limit as burst", p: ratelimit.Policy{Limit: math.MaxInt64, Window: time.Second}, wantErr: true},
		{name: "tolerance over the bound in ns", p: ratelimit.Policy{Limit: 1, Window: 36500 * 24 * time.Hour}, wantErr: true},
		{name: "tolerance over the bound in µs only", p: ratelimit.Policy{Limit: 1, Window: 1, Burst: 1 << 51}, wantErr: true},
		{name: "tolerance product overflows", p: ratelimit.Policy{Limit: 1, Window: time.Hour, Burst: math.MaxInt64}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); (err != nil) != tt.wantErr {
				t.Errorf("%+v.Validate() = %v, want error %v", tt.p, err, tt.wantErr)
			}
		})
	}
}

func TestValidateTake(t *testing.T) {
	ok := ratelimit.Policy{Name: "ok", Limit: 5, Window: time.Minute}
	tests := []struct {
		name     string
		policies []ratelimit.Policy
		cost     int
		wantErr  bool
		is       error
	}{
		{name: "valid", policies: []ratelimit.Policy{ok}, cost: 5},
		{name: "zero cost", policies: []ratelimit.Policy{ok}, cost: 0},
		{name: "no policies", cost: 1, wantErr: true},
		{name: "negative cost", policies: []ratelimit.Policy{ok}, cost: -1, wantErr: true},
		{name: "over burst", policies: []ratelimit.Policy{ok}, cost: 6, wantErr: true, is: ratelimit.ErrCostExceedsBurst},
		{name: "invalid policy", policies: []ratelimit.Policy{ok, {Limit: 1}}, cost: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ratelimit.ValidateTake(tt.policies, tt.cost)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ValidateTake(%v, %d) = %v, want error %v", tt.policies, tt.cost, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("ValidateTake(%v, %d) = %v, want errors.Is %v", tt.policies, tt.cost, err, tt.is)
			}
		})
	}
}

func TestPolicyWithin(t *testing.T) {
	huge := ratelimit.Policy{Limit: math.MaxInt, Window: time.Duration(math.MaxInt64)}
	tests := []struct {
		name string
		p, q string
		want bool
	}{
		{"same", "600/1m", "600/1m", true},
		{"same rate, smaller burst", "10/1s", "600/1m", true},
		{"same rate, bigger burst", "600/1m", "10/1s", false},
		{"slower", "100/1m", "600/1m", true},
		{"faster", "601/1m", "600/1m", false},
		{"faster by a hair", "600/59999ms", "600/1m", false},
		{"bigger burst", "600/1m;burst=601", "600/1m", false},
		{"smaller burst same rate", "600/1m;burst=10", "600/1m", true},
		{"slower but bigger burst", "1000/1d", "600/1m", false},
		{"slower, burst under", "1000/1d;burst=5", "600/1m", true},
		{"default vs own", "100/1m", "2/1m", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ratelimit.ParsePolicy(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			q, err := ratelimit.ParsePolicy(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Within(q); got != tt.want {
				t.Errorf("%s.Within(%s) = %v, want %v", tt.p, tt.q, got, tt.want)
			}
		})
	}
	t.Run("no overflow", func(t *testing.T) {
		faster := huge
		faster.Window-- // the same limit in a shorter window
		if !huge.Within(huge) || !huge.Within(faster) || faster.Within(huge) {
			t.Errorf("Within overflowed on %v", huge)
		}
	})
}
