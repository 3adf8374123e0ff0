package postgres

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/jackc/pgx/v5/pgtype"
)

// Money sums (rollup costs, balances, ledger amounts) are numeric(38, 0) in PostgreSQL: a day of a
// busy tenant outgrows int64 pico-USD ($9.2M). In Go they are *big.Int, moved through
// pgtype.Numeric, never through a float or a string.

var big10 = big.NewInt(10)

// numericToBig converts a NUMERIC to the exact integer it holds. pgx decodes a value as a
// coefficient and a power of ten (1200 may arrive as 12×10²), so the exponent is applied here;
// a fraction, which a money column cannot hold, is an error rather than a silent rounding.
func numericToBig(n pgtype.Numeric) (*big.Int, error) {
	if !n.Valid {
		return nil, errors.New("money is NULL")
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite {
		return nil, errors.New("money is not a finite number")
	}
	v := new(big.Int)
	if n.Int != nil {
		v.Set(n.Int)
	}
	switch {
	case n.Exp > 0:
		v.Mul(v, new(big.Int).Exp(big10, big.NewInt(int64(n.Exp)), nil))
	case n.Exp < 0:
		var rem big.Int
		v.QuoRem(v, new(big.Int).Exp(big10, big.NewInt(int64(-n.Exp)), nil), &rem)
		if rem.Sign() != 0 {
			return nil, fmt.Errorf("money %se%d is not a whole number of pico-USD", n.Int, n.Exp)
		}
	}
	return v, nil
}

// bigToNumeric is the exact NUMERIC of v, copied so the caller may change v afterwards.
func bigToNumeric(v *big.Int) pgtype.Numeric {
	return pgtype.Numeric{Int: new(big.Int).Set(v), Valid: true}
}
