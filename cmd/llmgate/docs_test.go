package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/llmgate/llmgate/api"
)

// The tests in this file keep the documentation in step with the code: every configuration key,
// every route and every error code the code can produce is documented, nothing documented is gone
// from the code, and every relative link in the docs leads somewhere.

// repoRoot is the module root as seen from this package's directory.
const repoRoot = "../.."

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(b)
}

// configKeys walks a config type by its yaml tags and returns the dotted keys of its leaves (list
// items as providers[].name, map entries as quota.tiers.<name>.rpm) and of the sections and lists
// above them.
func configKeys(tp reflect.Type) (leaves, sections []string) {
	var walk func(prefix string, tp reflect.Type)
	walk = func(prefix string, tp reflect.Type) {
		for i := 0; i < tp.NumField(); i++ {
			f := tp.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if strings.Contains(opts, "inline") {
				walk(prefix, ft)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name) // yaml.v3's default
			}
			key := prefix + name
			elem := ft
			suffix := "."
			switch ft.Kind() {
			case reflect.Slice:
				elem, suffix = ft.Elem(), "[]."
			case reflect.Map:
				elem, suffix = ft.Elem(), ".<name>."
			}
			for elem.Kind() == reflect.Pointer {
				elem = elem.Elem()
			}
			if elem.Kind() == reflect.Struct && elem != reflect.TypeOf(time.Time{}) {
				sections = append(sections, key)
				walk(key+suffix, elem)
				continue
			}
			leaves = append(leaves, key)
		}
	}
	walk("", tp)
	return leaves, sections
}

// tableKeys returns the backquoted text of the first cell of every table row of a markdown
// document: the reference tables list one key (or code) per row there.
func tableKeys(doc string) map[string]bool {
	out := map[string]bool{}
	first := regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|")
	for _, line := range strings.Split(doc, "\n") {
		if m := first.FindStringSubmatch(line); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// TestConfigReferenceComplete fails for a configuration key of the code that
// docs/configuration.md does not list, and for a key it lists that the code no longer has.
func TestConfigReferenceComplete(t *testing.T) {
	leaves, sections := configKeys(reflect.TypeOf(Config{}))
	if len(leaves) < 50 {
		t.Fatalf("suspiciously few config keys: %d", len(leaves))
	}
	documented := tableKeys(readDoc(t, "docs/configuration.md"))
	for _, k := range leaves {
		if !documented[k] {
			t.Errorf("docs/configuration.md: config key %s is not documented (add a table row starting with | `%s` |)", k, k)
		}
	}
	known := map[string]bool{}
	for _, k := range append(leaves, sections...) {
		known[k] = true
	}
	var stale []string
	for k := range documented {
		if !known[k] {
			stale = append(stale, k)
		}
	}
	slices.Sort(stale)
	for _, k := range stale {
		t.Errorf("docs/configuration.md documents %s, which is not a config key", k)
	}
}

// TestRoutesDocumented fails for an admin route (from api/openapi.yaml, which
// TestOpenAPIMatchesRoutes keeps equal to the registered routes) that docs/admin-api.md does not
// name as `METHOD /path`, and for a public route named in neither README.md nor docs/.
func TestRoutesDocumented(t *testing.T) {
	routes := specRoutes(t, api.OpenAPI)
	if len(routes) < 10 {
		t.Fatalf("suspiciously few routes: %d", len(routes))
	}
	adminDoc := readDoc(t, "docs/admin-api.md")
	all := readDoc(t, "README.md")
	docs, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, d := range docs {
		all += readDoc(t, filepath.Join("docs", filepath.Base(d)))
	}
	var missing []string
	for r := range routes {
		want := "`" + r.method + " " + r.path + "`"
		switch {
		case r.listener == "admin" && !strings.Contains(adminDoc, want):
			missing = append(missing, "docs/admin-api.md: "+want+" (admin listener)")
		case r.listener == "public" && !strings.Contains(all, want):
			missing = append(missing, "README.md or docs/: "+want+" (public listener)")
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Errorf("route not documented: %s", m)
	}
}

// errorCodes collects the error codes the code can answer with: the code argument of
// api.NewError and of every function that passes one of its parameters on as that argument
// (found to a fixed point, so gateway's newError and admin's fail count), where it is a string
// literal, a parameter followed by a literal suffix (admin's notFound: "user" + "_not_found"), or
// a local variable assigned string literals. Codes relayed from an upstream's answer are values
// at run time and cannot be collected; docs/troubleshooting.md covers them in prose.
func errorCodes(t *testing.T, dirs ...string) map[string][]string {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, dir := range dirs {
		err := filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			files = append(files, f)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	type ctor struct {
		arg    int    // index of the code argument
		suffix string // appended to a literal argument
	}
	ctors := map[string]ctor{"NewError": {arg: 1}}
	calleeName := func(c *ast.CallExpr) string {
		switch fn := c.Fun.(type) {
		case *ast.Ident:
			return fn.Name
		case *ast.SelectorExpr:
			return fn.Sel.Name
		}
		return ""
	}
	paramIndex := func(fd *ast.FuncDecl, name string) int {
		i := 0
		for _, f := range fd.Type.Params.List {
			for _, n := range f.Names {
				if n.Name == name {
					return i
				}
				i++
			}
			if len(f.Names) == 0 {
				i++
			}
		}
		return -1
	}
	// codeArg returns the code argument of a call to a known constructor.
	codeArg := func(c *ast.CallExpr) (ast.Expr, ctor, bool) {
		k, ok := ctors[calleeName(c)]
		if !ok || len(c.Args) <= k.arg {
			return nil, k, false
		}
		return c.Args[k.arg], k, true
	}
	// Find wrappers: functions that pass a parameter (possibly with a literal suffix) as the code.
	for changed := true; changed; {
		changed = false
		for _, f := range files {
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil || fd.Recv != nil {
					continue
				}
				if _, done := ctors[fd.Name.Name]; done {
					continue
				}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					c, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					a, k, ok := codeArg(c)
					if !ok {
						return true
					}
					var id *ast.Ident
					suffix := k.suffix
					switch a := a.(type) {
					case *ast.Ident:
						id = a
					case *ast.BinaryExpr:
						lit, ok := a.Y.(*ast.BasicLit)
						if !ok || a.Op != token.ADD {
							return true
						}
						s, _ := strconv.Unquote(lit.Value)
						suffix = s + suffix
						ast.Inspect(a.X, func(n ast.Node) bool {
							if x, ok := n.(*ast.Ident); ok && id == nil && paramIndex(fd, x.Name) >= 0 {
								id = x
							}
							return true
						})
					}
					if id == nil {
						return true
					}
					if i := paramIndex(fd, id.Name); i >= 0 {
						ctors[fd.Name.Name] = ctor{arg: i, suffix: suffix}
						changed = true
						return false
					}
					return true
				})
			}
		}
	}
	codes := map[string][]string{}
	add := func(s string, pos token.Pos) {
		if s != "" {
			codes[s] = append(codes[s], fset.Position(pos).String())
		}
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			var assigned map[string][]*ast.BasicLit // local variable → literals assigned to it
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Body != nil {
				assigned = map[string][]*ast.BasicLit{}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					as, ok := n.(*ast.AssignStmt)
					if !ok || len(as.Lhs) != len(as.Rhs) {
						return true
					}
					for i, l := range as.Lhs {
						if id, ok := l.(*ast.Ident); ok {
							if lit, ok := as.Rhs[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
								assigned[id.Name] = append(assigned[id.Name], lit)
							}
						}
					}
					return true
				})
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				a, k, ok := codeArg(c)
				if !ok {
					return true
				}
				switch a := a.(type) {
				case *ast.BasicLit:
					if a.Kind == token.STRING {
						s, _ := strconv.Unquote(a.Value)
						add(strings.ReplaceAll(s, " ", "_")+k.suffix, c.Pos())
					}
				case *ast.Ident:
					if k.suffix == "" {
						for _, lit := range assigned[a.Name] {
							s, _ := strconv.Unquote(lit.Value)
							add(s, lit.Pos())
						}
					}
				}
				return true
			})
		}
	}
	return codes
}

// TestErrorCodesDocumented fails for an error code the code can answer with that
// docs/troubleshooting.md has no table row for, and for a row whose code the code no longer has.
func TestErrorCodesDocumented(t *testing.T) {
	codes := errorCodes(t, "api", "gateway", "admin", "providers", "internal", "cmd")
	for _, want := range []string{"invalid_api_key", "upstream_redirect", "tenant_not_found", "invalid_body"} {
		if _, ok := codes[want]; !ok {
			t.Fatalf("the collector missed %s: it no longer sees every constructor (found %d codes)", want, len(codes))
		}
	}
	documented := tableKeys(readDoc(t, "docs/troubleshooting.md"))
	var missing, stale []string
	for c, where := range codes {
		if !documented[c] {
			missing = append(missing, c+" (used at "+strings.Join(where, ", ")+")")
		}
	}
	for c := range documented {
		if _, ok := codes[c]; !ok {
			stale = append(stale, c)
		}
	}
	slices.Sort(missing)
	slices.Sort(stale)
	for _, c := range missing {
		t.Errorf("docs/troubleshooting.md: error code %s has no table row", c)
	}
	for _, c := range stale {
		t.Errorf("docs/troubleshooting.md has a row for %s, which the code no longer answers with", c)
	}
}

// TestDocLinks fails for a relative link in README.md or docs/*.md whose file does not exist, or
// whose #anchor names no heading of that file (GitHub's anchor rules).
func TestDocLinks(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	docs = append(docs, filepath.Join(repoRoot, "README.md"))
	if len(docs) < 5 {
		t.Fatalf("want README.md and the docs/ pages, found %v", docs)
	}
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	checked := 0
	for _, doc := range docs {
		raw, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, doc)
		for _, m := range link.FindAllStringSubmatch(stripCode(string(raw)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Errorf("%s: link %s: no such file", rel, target)
				continue
			}
			if anchor == "" {
				continue
			}
			if info.IsDir() || !strings.HasSuffix(path, ".md") {
				t.Errorf("%s: link %s: an anchor into a file that is not markdown", rel, target)
				continue
			}
			b, _ := os.ReadFile(path)
			if !slices.Contains(anchors(string(b)), anchor) {
				t.Errorf("%s: link %s: no heading with anchor #%s in %s", rel, target, anchor, file)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("suspiciously few relative links checked: %d", checked)
	}
}

// stripCode removes fenced code blocks and inline code, where brackets are not links.
func stripCode(s string) string {
	var b strings.Builder
	fenced := false
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			b.WriteString(regexp.MustCompile("`[^`]*`").ReplaceAllString(line, ""))
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// anchors lists the anchors GitHub gives a document's headings: lower case, punctuation other
// than - and _ removed, spaces as -, and -1, -2 … on repeats.
func anchors(doc string) []string {
	var out []string
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteByte('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out = append(out, a+"-"+strconv.Itoa(n))
		} else {
			out = append(out, a)
		}
		seen[a]++
	}
	return out
}
