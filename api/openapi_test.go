package api_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/llmgate/llmgate/api"
)

// The document's agreement with the registered routes is tested in cmd/llmgate, where both
// listeners are built; these tests check the document is well-formed on its own.

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func parseSpec(t *testing.T) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("api/openapi.yaml does not parse: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatal("api/openapi.yaml: want one YAML mapping")
	}
	return doc.Content[0]
}

// get returns the value of key in a mapping node, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// pairs iterates a mapping node's keys and values in document order.
func pairs(n *yaml.Node, f func(k, v *yaml.Node)) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		f(n.Content[i], n.Content[i+1])
	}
}

// resolve follows a local JSON pointer such as #/components/schemas/Error
// (https://www.rfc-editor.org/rfc/rfc6901).
func resolve(root *yaml.Node, ref string) *yaml.Node {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	n := root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		if n = get(n, tok); n == nil {
			return nil
		}
	}
	return n
}

// deref resolves n when it is a {$ref: …} node.
func deref(root, n *yaml.Node) *yaml.Node {
	if r := get(n, "$ref"); r != nil {
		return resolve(root, r.Value)
	}
	return n
}

func TestOpenAPIVersion(t *testing.T) {
	root := parseSpec(t)
	v := get(root, "openapi")
	if v == nil {
		t.Fatal("no openapi version field")
	}
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v.Value) {
		t.Fatalf("openapi = %q, want 3.1.x", v.Value)
	}
	for _, k := range []string{"info", "paths", "components"} {
		if get(root, k) == nil {
			t.Errorf("missing top-level %q", k)
		}
	}
}

// TestOpenAPIRefsResolve walks every node: each $ref must be local and point at something, and
// every component must be referenced (an unreferenced one is usually a leftover).
func TestOpenAPIRefsResolve(t *testing.T) {
	root := parseSpec(t)
	used := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.MappingNode:
			pairs(n, func(k, v *yaml.Node) {
				if k.Value == "$ref" {
					if !strings.HasPrefix(v.Value, "#/components/") {
						t.Errorf("%s: $ref %q: want a local #/components/… reference", path, v.Value)
					} else if resolve(root, v.Value) == nil {
						t.Errorf("%s: $ref %q does not resolve", path, v.Value)
					}
					used[v.Value] = true
					return
				}
				walk(v, path+"/"+k.Value)
			})
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, path+"/-")
			}
		case yaml.AliasNode:
			t.Errorf("%s: YAML aliases are not portable across OpenAPI tools", path)
		}
	}
	walk(root, "#")
	if len(used) == 0 {
		t.Fatal("no $ref found: the walk is broken")
	}
	pairs(get(root, "components"), func(kind, group *yaml.Node) {
		if kind.Value == "securitySchemes" {
			return // used by name in security requirements, checked below
		}
		pairs(group, func(name, _ *yaml.Node) {
			if ref := "#/components/" + kind.Value + "/" + name.Value; !used[ref] {
				t.Errorf("%s is never referenced", ref)
			}
		})
	})
}

// TestOpenAPIOperations checks each operation: a unique operationId, responses keyed by quoted
// status codes, security schemes that exist, and path parameters that match the template.
func TestOpenAPIOperations(t *testing.T) {
	root := parseSpec(t)
	schemes := get(get(root, "components"), "securitySchemes")
	var serverURLs []string
	for _, s := range get(root, "servers").Content {
		serverURLs = append(serverURLs, get(s, "url").Value)
	}
	ids := map[string]string{}
	templ := regexp.MustCompile(`\{([^}]+)\}`)
	n := 0
	pairs(get(root, "paths"), func(pk, item *yaml.Node) {
		path := pk.Value
		servers := get(item, "servers")
		if servers == nil || len(servers.Content) == 0 {
			t.Errorf("%s: no servers: say which listener serves it", path)
		} else {
			for _, s := range servers.Content {
				if u := get(s, "url"); u == nil || !slices.Contains(serverURLs, u.Value) {
					t.Errorf("%s: server %v is not one of the top-level servers %v", path, u, serverURLs)
				}
			}
		}
		var want []string
		for _, m := range templ.FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		pathParams := func(list *yaml.Node) map[string]bool {
			out := map[string]bool{}
			if list == nil {
				return out
			}
			for _, p := range list.Content {
				p = deref(root, p)
				if get(p, "in") != nil && get(p, "in").Value == "path" {
					out[get(p, "name").Value] = true
					if r := get(p, "required"); r == nil || r.Value != "true" {
						t.Errorf("%s: path parameter %s must be required", path, get(p, "name").Value)
					}
				}
			}
			return out
		}
		common := pathParams(get(item, "parameters"))
		for _, method := range httpMethods {
			op := get(item, method)
			if op == nil {
				continue
			}
			n++
			where := strings.ToUpper(method) + " " + path
			id := get(op, "operationId")
			switch {
			case id == nil:
				t.Errorf("%s: no operationId", where)
			case ids[id.Value] != "":
				t.Errorf("%s: operationId %q already used by %s", where, id.Value, ids[id.Value])
			default:
				ids[id.Value] = where
			}
			declared := pathParams(get(op, "parameters"))
			for k := range common {
				declared[k] = true
			}
			for _, p := range want {
				if !declared[p] {
					t.Errorf("%s: path parameter {%s} is not declared", where, p)
				}
				delete(declared, p)
			}
			for p := range declared {
				t.Errorf("%s: declares path parameter %s that is not in the path", where, p)
			}
			if get(op, "security") == nil {
				t.Errorf("%s: no security (write `security: []` for an open endpoint)", where)
			}
			for _, req := range get(op, "security").Content {
				pairs(req, func(k, _ *yaml.Node) {
					if get(schemes, k.Value) == nil {
						t.Errorf("%s: unknown security scheme %q", where, k.Value)
					}
				})
			}
			resp := get(op, "responses")
			if resp == nil || len(resp.Content) == 0 {
				t.Errorf("%s: no responses", where)
			}
			pairs(resp, func(code, _ *yaml.Node) {
				if code.Tag != "!!str" {
					t.Errorf("%s: response code %s must be a quoted string", where, code.Value)
				}
			})
		}
	})
	if n == 0 {
		t.Fatal("no operations found")
	}
}

// TestOpenAPISecurity: /v1 and the Azure paths (/openai) take the API key, /admin the admin
// token, the rest nothing.
func TestOpenAPISecurity(t *testing.T) {
	root := parseSpec(t)
	pairs(get(root, "paths"), func(pk, item *yaml.Node) {
		var want []string
		switch {
		case strings.HasPrefix(pk.Value, "/v1/"), strings.HasPrefix(pk.Value, "/openai/"):
			want = []string{"apiKey", "apiKeyHeader", "xApiKeyHeader"}
		case strings.HasPrefix(pk.Value, "/admin/"):
			want = []string{"adminToken"}
		}
		for _, method := range httpMethods {
			op := get(item, method)
			if op == nil || get(op, "security") == nil {
				continue
			}
			if pk.Value == "/admin/session" {
				// The console's sign-in takes the token in its body, reading the session takes
				// either credential, and signing out ends the session the cookie names.
				want = map[string][]string{"post": nil, "get": {"adminToken", "consoleSession"}, "delete": {"consoleSession"}}[method]
			}
			var got []string
			for _, req := range get(op, "security").Content {
				pairs(req, func(k, _ *yaml.Node) { got = append(got, k.Value) })
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s %s: security %v, want %v", strings.ToUpper(method), pk.Value, got, want)
			}
		}
	})
}
