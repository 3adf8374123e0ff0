// Command k8sschemas turns the Kubernetes OpenAPI v3 documents into the standalone JSON schemas
// kubeconform reads from a local directory, so the Helm chart's output is validated against the
// real Kubernetes API without fetching schemas from the network. The documents come with the
// k8s.io/kubernetes module (api/openapi-spec/v3), which the Go module proxy serves:
//
//	dir=$(go mod download -json k8s.io/kubernetes@v1.36.3 | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
//	go run ./scripts/k8sschemas -in "$dir/api/openapi-spec/v3" -out schemas
//	kubeconform -strict -schema-location 'schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json' …
//
// Each schema of a kind (x-kubernetes-group-version-kind) is written with every $ref inlined and
// descriptions dropped, under kubeconform's file name (deployment-apps-v1.json, service-v1.json).
// Nullable fields also accept null. With -strict, objects with fixed properties refuse unknown
// ones (additionalProperties: false), as kubeconform's own "-strict" schemas do.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	in := flag.String("in", "", "directory of the Kubernetes OpenAPI v3 documents (api/openapi-spec/v3)")
	out := flag.String("out", "", "directory to write the JSON schemas to")
	strict := flag.Bool("strict", true, "refuse unknown properties of objects with fixed properties")
	flag.Parse()
	if *in == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	n, err := run(*in, *out, *strict)
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sschemas:", err)
		os.Exit(1)
	}
	fmt.Printf("k8sschemas: %d schemas in %s\n", n, *out)
}

// run converts every document of in and returns the number of schemas written.
func run(in, out string, strict bool) (int, error) {
	docs, err := filepath.Glob(filepath.Join(in, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(docs) == 0 {
		return 0, fmt.Errorf("no OpenAPI documents in %s", in)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return 0, err
	}
	written := map[string]bool{}
	for _, doc := range docs {
		raw, err := os.ReadFile(doc)
		if err != nil {
			return 0, err
		}
		var spec struct {
			Components struct {
				Schemas map[string]any `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(raw, &spec); err != nil {
			return 0, fmt.Errorf("%s: %w", doc, err)
		}
		c := converter{defs: spec.Components.Schemas, strict: strict}
		names := make([]string, 0, len(c.defs))
		for name := range c.defs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			def, _ := c.defs[name].(map[string]any)
			for _, gvk := range kinds(def) {
				file := fileName(gvk)
				if written[file] {
					continue
				}
				schema, err := c.inline(def, []string{name})
				if err != nil {
					return 0, fmt.Errorf("%s: %s: %w", doc, name, err)
				}
				b, err := json.Marshal(schema)
				if err != nil {
					return 0, err
				}
				if err := os.WriteFile(filepath.Join(out, file), b, 0o644); err != nil {
					return 0, err
				}
				written[file] = true
			}
		}
	}
	return len(written), nil
}

// gvk is one group, version and kind a schema stands for.
type gvk struct{ group, version, kind string }

// kinds reads a definition's x-kubernetes-group-version-kind.
func kinds(def map[string]any) []gvk {
	list, _ := def["x-kubernetes-group-version-kind"].([]any)
	var out []gvk
	for _, e := range list {
		m, _ := e.(map[string]any)
		g, _ := m["group"].(string)
		v, _ := m["version"].(string)
		k, _ := m["kind"].(string)
		if v != "" && k != "" {
			out = append(out, gvk{g, v, k})
		}
	}
	return out
}

// fileName is kubeconform's name for a kind's schema: {{ .ResourceKind }}{{ .KindSuffix }}.json,
// the kind in lower case, then the first label of the group and the version
// (horizontalpodautoscaler-autoscaling-v2.json; service-v1.json for the core group).
func fileName(k gvk) string {
	suffix := "-" + strings.ToLower(k.version)
	if k.group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.group, ".")[0]) + suffix
	}
	return strings.ToLower(k.kind) + suffix + ".json"
}

// converter inlines the references of one document's definitions.
type converter struct {
	defs   map[string]any
	strict bool
}

const refPrefix = "#/components/schemas/"

// inline returns a copy of node with every $ref replaced by its definition. A reference back to
// a definition being inlined (only JSONSchemaProps refers to itself) becomes an empty schema,
// which accepts anything there.
func (c converter) inline(node any, stack []string) (any, error) {
	switch n := node.(type) {
	case []any:
		out := make([]any, len(n))
		for i, e := range n {
			v, err := c.inline(e, stack)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			name, ok := strings.CutPrefix(ref, refPrefix)
			if !ok {
				return nil, fmt.Errorf("reference %q outside the document", ref)
			}
			for _, s := range stack {
				if s == name {
					return map[string]any{}, nil
				}
			}
			def, ok := c.defs[name]
			if !ok {
				return nil, errors.New("no definition " + name)
			}
			return c.inline(def, append(stack, name))
		}
		out := make(map[string]any, len(n))
		for k, v := range n {
			if k == "description" || strings.HasPrefix(k, "x-") {
				continue
			}
			if k == "properties" { // property names, not keywords: keep every one
				props, _ := v.(map[string]any)
				p := make(map[string]any, len(props))
				for name, s := range props {
					iv, err := c.inline(s, stack)
					if err != nil {
						return nil, err
					}
					p[name] = iv
				}
				out[k] = p
				continue
			}
			iv, err := c.inline(v, stack)
			if err != nil {
				return nil, err
			}
			out[k] = iv
		}
		if nullable, _ := n["nullable"].(bool); nullable {
			delete(out, "nullable")
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		preserve, _ := n["x-kubernetes-preserve-unknown-fields"].(bool)
		if _, hasProps := out["properties"]; c.strict && hasProps && !preserve {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out, nil
	default:
		return node, nil
	}
}
