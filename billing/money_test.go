package billing

import (
	"errors"
	"math"
	"math/big"
	"testing"
)

func TestParseUSD(t *testing.T) {
	ok := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"2", 2_000_000},
		{"2.5", 2_500_000},
		{"2.50", 2_500_000},
		{"0.1", 100_000}, // 0.1 is not representable as a float; here it is exact
		{"0.075", 75_000},
		{"0.0028", 2_800},
		{"0.000001", 1},
		{"0.352113", 352_113},
		{"180.00", 180_000_000},
		{"007.5", 7_500_000},
		{"-3", -3_000_000},
		{"-0.000001", -1},
		{"-0", 0},
		{"9223372036854.775807", math.MaxInt64},
		{"-9223372036854.775808", math.MinInt64},
	}
	for _, c := range ok {
		got, err := ParseUSD(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", " ", " 1", "1 ", "+1", "--1", "-", ".5", "5.", ".", "1.2.3",
		"0.0000001", // 7 decimal places: below one micro-USD
		"1.0000000", // 7 places even if zero: rejected rather than guessed at
		"1e3", "1E-3", "0x10", "1_000", "1,000", "$1", "1$", "USD1", "NaN", "Inf", "-Inf", ".inf",
		"9223372036854.775808",  // MaxInt64 + 1
		"-9223372036854.775809", // MinInt64 - 1
		"99999999999999999999999",
		"١٢", // non-ASCII digits
	}
	for _, in := range bad {
		if got, err := ParseUSD(in); err == nil || !errors.Is(err, ErrBadAmount) {
			t.Errorf("ParseUSD(%q) = %d, %v; want an ErrBadAmount error", in, got, err)
		}
	}
}

func TestFormat(t *testing.T) {
	pico := []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1, "0.000000000001"},
		{1_234_500_000, "0.0012345"},
		{500_000_000_000, "0.5"},
		{-500_000_000_000, "-0.5"},
		{3_000_000_000_000, "3"},
		{280_000_000_000, "0.28"},
		{math.MaxInt64, "9223372.036854775807"},
		{math.MinInt64, "-9223372.036854775808"},
	}
	for _, c := range pico {
		if got := FormatPico64(c.in); got != c.want {
			t.Errorf("FormatPico64(%d) = %q, want %q", c.in, got, c.want)
		}
		if got := FormatPico(big.NewInt(c.in)); got != c.want {
			t.Errorf("FormatPico(%d) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := FormatPico(nil); got != "0" {
		t.Errorf("FormatPico(nil) = %q", got)
	}
	// Beyond int64: rollups and balances are NUMERIC.
	huge, _ := new(big.Int).SetString("123456789012345678901234567", 10)
	if got := FormatPico(huge); got != "123456789012345.678901234567" {
		t.Errorf("FormatPico(huge) = %q", got)
	}

	for _, c := range []struct {
		in   int64
		want string
	}{{0, "0"}, {1, "0.000001"}, {75_000, "0.075"}, {2_500_000, "2.5"}, {-2_500_000, "-2.5"}, {180_000_000, "180"}} {
		if got := FormatMicro(c.in); got != c.want {
			t.Errorf("FormatMicro(%d) = %q, want %q", c.in, got, c.want)
		}
		back, err := ParseUSD(FormatMicro(c.in))
		if err != nil || back != c.in {
			t.Errorf("ParseUSD(FormatMicro(%d)) = %d, %v", c.in, back, err)
		}
	}
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"2.50", "0.000001", "-3", "1e3", ".5", "9223372036854.775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseUSD(s)
		if err != nil {
			return
		}
		// Whatever parses must round-trip exactly through the formatter.
		back, err := ParseUSD(FormatMicro(v))
		if err != nil || back != v {
			t.Fatalf("%q → %d → %q → %d, %v", s, v, FormatMicro(v), back, err)
		}
	})
}
