package adminclient

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Output of the admin CLI: lists as tables with a row per item, single objects as a table of
// their fields in the API's order, and --json as the API wrote it (indented).

// column is one column of a list's table.
type column struct {
	// field is the item's field; "a.b" is field b of object a.
	header, field string
	empty         string // shown for an empty value ("-" when unset)
}

// printJSON writes v indented, leaving the API's strings as they are.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// decodeNumbers decodes JSON keeping numbers exact, so that values read back can be sent again.
func decodeNumbers(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

func printTable(w io.Writer, cols []column, items []json.RawMessage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, c := range cols {
		fmt.Fprint(tw, sep(i), c.header)
	}
	fmt.Fprintln(tw)
	for _, raw := range items {
		var m map[string]any
		if err := decodeNumbers(raw, &m); err != nil {
			return fmt.Errorf("admin API: unexpected list item: %w", err)
		}
		for i, c := range cols {
			fmt.Fprint(tw, sep(i), c.cell(lookup(m, c.field)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// lookup reads a field of an object, "a.b" being field b of object a.
func lookup(m map[string]any, field string) any {
	for {
		name, rest, nested := strings.Cut(field, ".")
		if !nested {
			return m[name]
		}
		m, _ = m[name].(map[string]any)
		field = rest
	}
}

// cell renders the column's value.
func (c column) cell(v any) string {
	if s := cell(v); s != "-" || c.empty == "" {
		return s
	}
	return c.empty
}

func sep(i int) string {
	if i == 0 {
		return ""
	}
	return "\t"
}

// printObject prints an object's fields, one a line, but those in omit, and then the one-time
// secret, if any. cols say what an empty field means where a list's column does ("*": every
// model).
func printObject(w io.Writer, raw []byte, secret string, omit []string, cols []column) error {
	names, vals, err := objectFields(raw)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	shown := ""
	var effective json.RawMessage
	for i, name := range names {
		if name == secret && secret != "" {
			shown, _ = vals[i].(string)
			continue
		}
		if name == effectiveLimits {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(raw, &fields); err == nil {
				effective = fields[name]
			}
			continue
		}
		if slices.Contains(omit, name) {
			continue
		}
		v := cell(vals[i])
		for _, c := range cols {
			if c.field == name {
				v = c.cell(vals[i])
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printEffectiveLimits(w, effective); err != nil {
		return err
	}
	if shown != "" {
		_, err = fmt.Fprintf(w, "\n%s (shown once): %s\n", secret, shown)
	}
	return err
}

// effectiveLimits is the field of a key holding what the gateway applies to it: an object of
// {"value", "source"} per dimension, printed as its own table.
const effectiveLimits = "effective_limits"

// printEffectiveLimits prints a key's effective limits (nothing for null or absent), one
// dimension a line in the API's order: its limit ("unlimited" for 0, "none" for no budget) and
// what sets it.
func printEffectiveLimits(w io.Writer, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dims, vals, err := objectFields(raw)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\neffective limits (the tightest of the key's own, its user's or tier's, and its tenant's):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DIMENSION\tLIMIT\tSOURCE")
	for i, dim := range dims {
		l, _ := vals[i].(map[string]any)
		v := cell(l["value"])
		switch {
		case v == "0":
			v = "unlimited"
		case v == "-":
			v = "none"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", dim, v, cell(l["source"]))
	}
	return tw.Flush()
}

// objectFields reads a JSON object's fields in order.
func objectFields(raw []byte) ([]string, []any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, errors.New("admin API: the answer is not a JSON object")
	}
	var names []string
	var vals []any
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("admin API: %w", err)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("admin API: %w", err)
		}
		names = append(names, fmt.Sprint(t))
		vals = append(vals, v)
	}
	return names, vals, nil
}

// cell renders a JSON value in one table cell: "-" for null and empty, times in UTC to the
// second, lists comma-separated, objects as sorted key=value pairs without their nulls.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if v == "" {
			return "-"
		}
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
		return v
	case []any:
		if len(v) == 0 {
			return "-"
		}
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = cell(x)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k, x := range v {
			if x != nil {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return "-"
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + cell(v[k])
		}
		return strings.Join(keys, " ")
	}
	return fmt.Sprint(v)
}
