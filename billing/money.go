package billing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Money in llmgate is always an integer count of a fixed fraction of a US dollar, never a float:
//
//   - prices are micro-USD (1e-6 USD) per 1M tokens, so a price such as $0.075 per 1M tokens is the
//     integer 75000 and any price with at most six decimal places is exact;
//   - a cost is pico-USD (1e-12 USD): tokens × micro-USD-per-1M tokens is exactly the cost in
//     pico-USD (1e-6 USD / 1e6 tokens = 1e-12 USD per token per micro-USD), with no division and
//     therefore no rounding anywhere between a provider's usage block and the ledger.
//
// Decimal text is the only way money enters or leaves the process (YAML, the admin API, NUMERIC
// columns), so this file converts between decimal text and those integers digit by digit.

// maxMicroDecimals is how many decimal places of a USD amount micro-USD hold.
const maxMicroDecimals = 6

// ErrBadAmount is wrapped by every ParseUSD error.
var ErrBadAmount = errors.New("invalid USD amount")

// ParseUSD parses a decimal USD amount into integer micro-USD, exactly.
//
// Accepted: an optional leading '-', one or more digits, and optionally '.' followed by one to six
// digits ("2.50" → 2500000, "0.000001" → 1, "-3" → -3000000). Rejected: empty text, whitespace,
// '+', exponents ("1e3"), a bare or trailing point (".5", "5."), separators ("1,000", "1_000"),
// currency signs, more than six decimal places (they cannot be represented in micro-USD and
// silently rounding money is not acceptable), and amounts beyond the int64 range. The sign is
// accepted because credit adjustments are negative; callers pricing tokens reject negatives.
//
// It is the parser behind prices in configs/pricing.yaml and the admin API's *_per_million
// fields, which may be JSON numbers or strings: pass the number's literal text (json.Number), never
// a float64, so "0.1" stays 100000 and not 99999.
func ParseUSD(s string) (int64, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrBadAmount)
	}
	neg := false
	if s[0] == '-' {
		neg = true
		s = s[1:]
	}
	intPart, frac, hasPoint := strings.Cut(s, ".")
	if intPart == "" {
		return 0, fmt.Errorf("%w %q: digits are required before the decimal point", ErrBadAmount, orig)
	}
	if hasPoint && frac == "" {
		return 0, fmt.Errorf("%w %q: digits are required after the decimal point", ErrBadAmount, orig)
	}
	if !allDigits(intPart) || !allDigits(frac) {
		return 0, fmt.Errorf("%w %q: want plain decimal digits such as 2.50 (no sign other than a "+
			"leading '-', exponent, separator or currency sign)", ErrBadAmount, orig)
	}
	if len(frac) > maxMicroDecimals {
		return 0, fmt.Errorf("%w %q: more than %d decimal places (the unit is one micro-USD)",
			ErrBadAmount, orig, maxMicroDecimals)
	}
	// Accumulate in uint64 so that -9223372036854.775808 (math.MinInt64 micro-USD) is reachable.
	const limit = uint64(math.MaxInt64) + 1
	var v uint64
	for _, c := range intPart + frac + strings.Repeat("0", maxMicroDecimals-len(frac)) {
		d := uint64(c - '0')
		if v > (limit-d)/10 {
			return 0, fmt.Errorf("%w %q: out of range", ErrBadAmount, orig)
		}
		v = v*10 + d
	}
	if neg {
		return int64(-v), nil // v ≤ 2^63: -v wraps to the right value for MinInt64 too
	}
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w %q: out of range", ErrBadAmount, orig)
	}
	return int64(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatMicro renders integer micro-USD as exact decimal USD without trailing zeros:
// 2500000 → "2.5", 75000 → "0.075", 0 → "0". It is the inverse of ParseUSD.
func FormatMicro(micro int64) string {
	return formatFixed(new(big.Int).SetInt64(micro), maxMicroDecimals)
}

// FormatPico renders integer pico-USD (a cost, a rollup or a credit balance) as exact decimal USD
// without trailing zeros: 1234500000 → "0.0012345", -5e11 → "-0.5", nil or 0 → "0". Sums are
// *big.Int because they outgrow int64 (≈ 9.2 million USD in pico-USD).
func FormatPico(pico *big.Int) string {
	if pico == nil {
		return "0"
	}
	return formatFixed(pico, 12)
}

// FormatPico64 is FormatPico for one record's int64 cost.
func FormatPico64(pico int64) string {
	return formatFixed(new(big.Int).SetInt64(pico), 12)
}

// formatFixed renders v × 10^-decimals exactly, trimming trailing fractional zeros.
func formatFixed(v *big.Int, decimals int) string {
	digits := new(big.Int).Abs(v).String()
	if len(digits) <= decimals {
		digits = strings.Repeat("0", decimals-len(digits)+1) + digits
	}
	intPart, frac := digits[:len(digits)-decimals], strings.TrimRight(digits[len(digits)-decimals:], "0")
	out := intPart
	if frac != "" {
		out += "." + frac
	}
	if v.Sign() < 0 {
		out = "-" + out
	}
	return out
}
