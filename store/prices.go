package store

import (
	"encoding/json"
	"fmt"
)

// EncodeImagePrices is the image_prices column's text: a JSON object of key → micro-USD (keys
// sorted, so equal tables store equal text), or nil for a price without image prices.
func EncodeImagePrices(m map[string]int64) *string {
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m) // a map of strings to integers always marshals
	s := string(b)
	return &s
}

// DecodeImagePrices reads the image_prices column (nil: none).
func DecodeImagePrices(s *string) (map[string]int64, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	var m map[string]int64
	if err := json.Unmarshal([]byte(*s), &m); err != nil {
		return nil, fmt.Errorf("image_prices: %w", err)
	}
	return m, nil
}
