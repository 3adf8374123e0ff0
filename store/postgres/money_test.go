package postgres

import (
	"math/big"
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
)

// TestNumericToBig: pgx hands NUMERIC over as a coefficient and a power of ten in whatever
// normalisation the wire format gave; every form of an integer converts exactly, and what is not
// a whole number of pico-USD is an error, never rounded.
func TestNumericToBig(t *testing.T) {
	tenTo30, _ := new(big.Int).SetString("1000000000000000000000000000000", 10)
	for _, tc := range []struct {
		n    pgtype.Numeric
		want string // "" for an error
	}{
		{pgtype.Numeric{Int: big.NewInt(0), Valid: true}, "0"},
		{pgtype.Numeric{Valid: true}, "0"}, // a nil coefficient is zero
		{pgtype.Numeric{Int: big.NewInt(-123), Valid: true}, "-123"},
		{pgtype.Numeric{Int: big.NewInt(12), Exp: 2, Valid: true}, "1200"},
		{pgtype.Numeric{Int: big.NewInt(-1), Exp: 30, Valid: true}, "-" + tenTo30.String()},
		{pgtype.Numeric{Int: big.NewInt(1200), Exp: -2, Valid: true}, "12"},
		{pgtype.Numeric{Int: big.NewInt(-1200), Exp: -2, Valid: true}, "-12"},
		{pgtype.Numeric{Int: big.NewInt(1201), Exp: -2, Valid: true}, ""},
		{pgtype.Numeric{Int: big.NewInt(-5), Exp: -1, Valid: true}, ""},
		{pgtype.Numeric{NaN: true, Valid: true}, ""},
		{pgtype.Numeric{InfinityModifier: pgtype.Infinity, Valid: true}, ""},
		{pgtype.Numeric{}, ""},
	} {
		got, err := numericToBig(tc.n)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("numericToBig(%+v) = %v, want an error", tc.n, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("numericToBig(%+v) = %v, %v; want %s", tc.n, got, err, tc.want)
		}
	}
	v := big.NewInt(42)
	n := bigToNumeric(v)
	v.SetInt64(7)
	if got, err := numericToBig(n); err != nil || got.Int64() != 42 {
		t.Errorf("bigToNumeric kept a reference to its argument: %v, %v", got, err)
	}
}
