// Package billing turns token usage into money: prices per model (loaded from
// configs/pricing.yaml or the store), the exact cost formula, and the in-memory table the request
// path reads. Money is integer micro-USD for prices and pico-USD for costs (see money.go); no
// float ever touches an amount.
package billing

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Price is a model's price per 1M tokens in integer micro-USD ("2.50" USD = 2500000).
type Price struct {
	Model      string
	InputPerM  int64
	OutputPerM int64
	// CachedInputPerM prices cached prompt tokens; 0 means the input price (no cache discount).
	CachedInputPerM int64
	// CacheWritePerM prices prompt tokens written to the provider's cache (Anthropic's
	// cache_creation_input_tokens); 0 means the input price (no premium).
	CacheWritePerM int64
	// ReasoningPerM prices reasoning tokens; 0 means the output price. Every provider in
	// PROVIDERS.md bills reasoning as output, so it is set only where a provider says otherwise.
	ReasoningPerM int64
	// Images prices one generated image, micro-USD, by key: "quality/size" ("hd/1024x1024"),
	// "size" ("1024x1024") or "default" (see ImagePrice). Nil: no per-image price.
	Images map[string]int64
	// AudioSecond prices one second of input audio (transcription, translation), micro-USD.
	AudioSecond int64
	// CharactersPerM prices 1M characters of speech input, micro-USD (as tokens are per 1M).
	CharactersPerM int64
	// Request is a fixed price per request, micro-USD, added to whatever else the request costs.
	Request int64
	// Version identifies this price in usage records (price_version). LoadPricingFile sets the
	// file's top-level `version`; prices read from the store carry the store's version.
	Version string
}

// LoadPricingFile reads and validates a pricing file (configs/pricing.yaml is the shipped one).
// See ParsePricing for the format and rules; errors start with the path.
func LoadPricingFile(path string) ([]Price, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	prices, err := ParsePricing(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return prices, nil
}

// ParsePricing parses pricing YAML:
//
//	version: "2026-11-22"        # required; becomes Price.Version
//	currency: USD                # required; only USD
//	providers:
//	  - provider: openai         # required
//	    source: "…"              # required: where the prices come from
//	    as_of: "2026-09-22"      # required: when they were read
//	    note: "…"                # optional
//	    models:
//	      - model: gpt-5.4       # required, unique across the file (case-insensitive)
//	        input: "2.50"        # USD per 1M tokens; required unless a unit price below is set
//	        output: 15.00        # required with input
//	        cached_input: 0.25   # optional; omitted = the input price
//	        cache_write: 3.75    # optional: prompt tokens written to the cache; omitted = the input price
//	        reasoning: "…"       # optional; omitted = the output price
//	        image:               # optional: USD per image, by "quality/size", "size" or "default"
//	          "1024x1024": 0.04
//	          "hd/1024x1024": 0.08
//	        audio_second: 0.0001 # optional: USD per second of input audio
//	        characters_million: 15 # optional: USD per 1M characters of speech input
//	        request: 0.001       # optional: USD per request, added to the rest
//	        source: "…"          # optional, overrides the provider's
//	        as_of: "…"           # optional
//	        note: "…"            # optional
//
// It is strict, because a typo in a price file is a billing error: unknown or repeated fields,
// missing required fields, and any amount that is not plain decimal text with at most six decimal
// places are rejected, with the line, the model and the field named. Amounts may be written as
// YAML numbers or strings; either way the literal text is parsed (ParseUSD), never a float, so
// 0.1 is exactly 100000 micro-USD. Negative amounts are rejected, and so is an explicit
// cached_input/cache_write/reasoning of 0 next to a non-zero base price, since 0 means "same as the base
// price" in Price and would silently not be the free tier it looks like.
func ParsePricing(data []byte) ([]Price, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err == io.EOF {
		return nil, fmt.Errorf("pricing: empty document")
	} else if err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("pricing: empty document")
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("pricing: want exactly one YAML document")
	}
	top, err := fields(doc.Content[0], "pricing file", []string{"version", "currency", "providers"}, nil)
	if err != nil {
		return nil, err
	}
	version, err := scalarString(top["version"], "pricing file", "version")
	if err != nil {
		return nil, err
	}
	currency, err := scalarString(top["currency"], "pricing file", "currency")
	if err != nil {
		return nil, err
	}
	if currency != "USD" {
		return nil, fmt.Errorf("pricing: line %d: currency %q: only USD is supported (convert other "+
			"currencies at a stated rate)", top["currency"].Line, currency)
	}
	provs := resolve(top["providers"])
	if provs.Kind != yaml.SequenceNode || len(provs.Content) == 0 {
		return nil, fmt.Errorf("pricing: line %d: providers: want a non-empty list", provs.Line)
	}

	var out []Price
	seen := map[string]int{} // lower-cased model → line
	for i, pn := range provs.Content {
		where := fmt.Sprintf("providers[%d]", i)
		pf, err := fields(pn, where, []string{"provider", "source", "as_of", "models"}, []string{"note"})
		if err != nil {
			return nil, err
		}
		name, err := scalarString(pf["provider"], where, "provider")
		if err != nil {
			return nil, err
		}
		where = fmt.Sprintf("provider %q", name)
		for _, f := range []string{"source", "as_of"} {
			if _, err := scalarString(pf[f], where, f); err != nil {
				return nil, err
			}
		}
		models := resolve(pf["models"])
		if models.Kind != yaml.SequenceNode || len(models.Content) == 0 {
			return nil, fmt.Errorf("pricing: line %d: %s: models: want a non-empty list", models.Line, where)
		}
		for j, mn := range models.Content {
			p, line, err := parseModel(mn, fmt.Sprintf("%s models[%d]", where, j))
			if err != nil {
				return nil, err
			}
			key := strings.ToLower(p.Model)
			if prev, dup := seen[key]; dup {
				return nil, fmt.Errorf("pricing: line %d: model %q: already priced at line %d "+
					"(model names are unique, case-insensitively)", line, p.Model, prev)
			}
			seen[key] = line
			p.Version = version
			out = append(out, p)
		}
	}
	return out, nil
}

// parseModel validates one models[] entry.
func parseModel(n *yaml.Node, where string) (Price, int, error) {
	mf, err := fields(n, where, []string{"model"},
		[]string{"input", "output", "cached_input", "cache_write", "reasoning", "image", "audio_second", "characters_million", "request", "source", "as_of", "note"})
	if err != nil {
		return Price{}, 0, err
	}
	name, err := scalarString(mf["model"], where, "model")
	if err != nil {
		return Price{}, 0, err
	}
	if strings.ContainsAny(name, " \t\r\n") {
		return Price{}, 0, fmt.Errorf("pricing: line %d: %s: model %q: whitespace in a model name",
			mf["model"].Line, where, name)
	}
	entry := where // "provider … models[i]", as fields names it
	where = fmt.Sprintf("model %q", name)
	_, hasIn := mf["input"]
	_, hasOut := mf["output"]
	units := false
	for _, f := range []string{"image", "audio_second", "characters_million", "request"} {
		_, set := mf[f]
		units = units || set
	}
	// Token prices come as a pair; a model priced only per unit (an image or speech model) may
	// leave them out.
	for _, f := range []string{"input", "output"} {
		if _, ok := mf[f]; !ok && (hasIn || hasOut || !units) {
			return Price{}, 0, fmt.Errorf("pricing: line %d: %s (%s): missing required field %q", n.Line, entry, where, f)
		}
	}
	p := Price{Model: name}
	if node, ok := mf["image"]; ok {
		if p.Images, err = imagePrices(node, where); err != nil {
			return Price{}, 0, err
		}
	}
	for _, f := range []struct {
		field string
		dst   *int64
	}{
		{"input", &p.InputPerM},
		{"output", &p.OutputPerM},
		{"cached_input", &p.CachedInputPerM},
		{"cache_write", &p.CacheWritePerM},
		{"reasoning", &p.ReasoningPerM},
		{"audio_second", &p.AudioSecond},
		{"characters_million", &p.CharactersPerM},
		{"request", &p.Request},
	} {
		node, ok := mf[f.field]
		if !ok {
			continue
		}
		if *f.dst, err = amount(node, where, f.field); err != nil {
			return Price{}, 0, err
		}
	}
	zeroMeansBase := func(field, baseField string, v, base int64) error {
		if node, ok := mf[field]; ok && v == 0 && base != 0 {
			return fmt.Errorf("pricing: line %d: %s: field %q: 0 means \"same as %s\"; omit the "+
				"field for that (a free tier cannot be expressed)", node.Line, where, field, baseField)
		}
		return nil
	}
	if err := zeroMeansBase("cached_input", "input", p.CachedInputPerM, p.InputPerM); err != nil {
		return Price{}, 0, err
	}
	if err := zeroMeansBase("cache_write", "input", p.CacheWritePerM, p.InputPerM); err != nil {
		return Price{}, 0, err
	}
	if err := zeroMeansBase("reasoning", "output", p.ReasoningPerM, p.OutputPerM); err != nil {
		return Price{}, 0, err
	}
	for _, f := range []string{"source", "as_of", "note"} {
		if node, ok := mf[f]; ok {
			if _, err := scalarString(node, where, f); err != nil {
				return Price{}, 0, err
			}
		}
	}
	return p, mf["model"].Line, nil
}

// imagePrices parses a model's image table: a non-empty mapping of price keys (ValidImageKey) to
// USD amounts per image.
func imagePrices(n *yaml.Node, where string) (map[string]int64, error) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return nil, fmt.Errorf("pricing: line %d: %s: field \"image\": want a mapping of \"quality/size\", \"size\" or \"default\" to USD per image", n.Line, where)
	}
	out := make(map[string]int64, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if err := ValidImageKey(k.Value); err != nil {
			return nil, fmt.Errorf("pricing: line %d: %s: field \"image\": %w", k.Line, where, err)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("pricing: line %d: %s: field \"image\": key %q given twice", k.Line, where, k.Value)
		}
		v, err := amount(n.Content[i+1], where, "image."+k.Value)
		if err != nil {
			return nil, err
		}
		out[k.Value] = v
	}
	return out, nil
}

// amount parses a price field: a YAML number or string whose literal text is a non-negative
// decimal with at most six decimal places.
func amount(n *yaml.Node, where, field string) (int64, error) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, fmt.Errorf("pricing: line %d: %s: field %q: want a decimal USD amount such as 2.50",
			n.Line, where, field)
	}
	v, err := ParseUSD(n.Value)
	if err != nil {
		return 0, fmt.Errorf("pricing: line %d: %s: field %q: %w", n.Line, where, field, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("pricing: line %d: %s: field %q: negative price %s", n.Line, where, field, n.Value)
	}
	return v, nil
}

// fields checks that n is a mapping with every required key, no key outside required+optional and
// no key twice, and returns the values by key.
func fields(n *yaml.Node, where string, required, optional []string) (map[string]*yaml.Node, error) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("pricing: line %d: %s: want a mapping", n.Line, where)
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string(nil), required...), optional...) {
		allowed[k] = true
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !allowed[k.Value] {
			return nil, fmt.Errorf("pricing: line %d: %s: unknown field %q (allowed: %s)", k.Line, where,
				k.Value, strings.Join(append(append([]string(nil), required...), optional...), ", "))
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("pricing: line %d: %s: field %q given twice", k.Line, where, k.Value)
		}
		out[k.Value] = v
	}
	for _, k := range required {
		if _, ok := out[k]; !ok {
			return nil, fmt.Errorf("pricing: line %d: %s: missing required field %q", n.Line, where, k)
		}
	}
	return out, nil
}

// scalarString returns a non-empty scalar's text.
func scalarString(n *yaml.Node, where, field string) (string, error) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		return "", fmt.Errorf("pricing: line %d: %s: field %q: want a non-empty value", n.Line, where, field)
	}
	return n.Value, nil
}

// resolve follows YAML aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}
