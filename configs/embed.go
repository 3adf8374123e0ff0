// Package configs ships the gateway's data files inside the binary, so a default install needs no
// files beside it.
package configs

import _ "embed"

// Pricing is configs/pricing.yaml: the seed prices of common models (micro-USD exact decimals).
//
//go:embed pricing.yaml
var Pricing []byte
