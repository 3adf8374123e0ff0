package adminclient

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The admin CLI: `llmgate keys|users|tenants|tokens|pricing COMMAND [ARG] [flags]`. Each command is
// one request to the admin API, described by an adminCommand; this file turns its flags into the
// request's body (or query), sends it and prints the answer (output.go).

// adminResource is one noun of the admin CLI.
type adminResource struct {
	name     string // "keys", as typed
	commands []adminCommand
	columns  []column // the table of its lists
}

// adminCommand is one request to the admin API.
type adminCommand struct {
	name, about string
	method      string
	// path of the request; "{}" stands for the positional argument, escaped.
	path string
	// arg names the positional argument in usage ("ID", "MODEL"); "" for none.
	arg string
	// argField, when set, makes the argument optional and sends it as this body field instead.
	argField string
	// slashes keeps "/" in the argument as path separators (model names).
	slashes bool
	// params are the flags that become body fields (or query parameters of a GET).
	params []param
	// list: the answer is {"data": [...]}; a paged list also takes --limit, --offset and --all.
	list, paged bool
	// secret is the field of the answer holding a plaintext shown only once.
	secret string
}

// paramKind says how a flag's text becomes a JSON value.
type paramKind int

const (
	text     paramKind = iota // a string as typed
	list                      // comma-separated strings; empty: null
	integer                   // a whole number; empty: null
	money                     // a decimal USD amount, sent as a string; empty: null
	instant                   // RFC 3339 or a duration from now; empty: null
	seconds                   // a duration (or whole seconds), sent as whole seconds; empty: null
	pairs                     // key=value, repeatable, into an object; "key=" is null
	flagTrue                  // a boolean flag, sent as true
	null                      // a boolean flag that sends null: clears the field
)

// param maps one flag to one field. A field "a.b" is field b of object a.
type param struct {
	flag, field string
	kind        paramKind
	usage       string
}

var usdAmount = regexp.MustCompile(`^[0-9]+(\.[0-9]{1,6})?$`)

// parse turns a flag's text into the field's JSON value (nil: null).
func (p param) parse(s string) (any, error) {
	if s == "" && p.kind != text {
		return nil, nil
	}
	switch p.kind {
	case list:
		var out []string
		for _, v := range strings.Split(s, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out, nil
	case integer:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, errors.New("want a whole number")
		}
		return n, nil
	case money:
		if !usdAmount.MatchString(s) {
			return nil, errors.New("want a USD amount such as 12.50 (at most 6 decimals)")
		}
		return s, nil
	case instant:
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, errors.New("want an RFC 3339 time (2030-01-31T00:00:00Z) or a duration from now (720h)")
		}
		return time.Now().Add(d).UTC().Truncate(time.Second), nil
	case seconds:
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
			return n, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, errors.New("want a duration such as 1h30m, or whole seconds")
		}
		return int64(d / time.Second), nil
	case flagTrue, null:
		return strconv.ParseBool(s)
	}
	return s, nil
}

// paramValue is the flag.Value of a param: what the command line set it to.
type paramValue struct {
	p   param
	set bool
	val any
}

func (v *paramValue) String() string { return "" }

func (v *paramValue) IsBoolFlag() bool { return v.p.kind == flagTrue || v.p.kind == null }

func (v *paramValue) Set(s string) error {
	if v.p.kind == pairs {
		k, val, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return errors.New("want key=value")
		}
		m, _ := v.val.(map[string]any)
		if m == nil {
			m = map[string]any{}
		}
		m[k] = val
		if val == "" {
			m[k] = nil
		}
		v.set, v.val = true, m
		return nil
	}
	x, err := v.p.parse(s)
	if err != nil {
		return err
	}
	if b, ok := x.(bool); ok && !b {
		return nil // --no-limits=false: as if absent
	}
	v.set, v.val = true, x
	return nil
}

// body is the JSON body of the set values.
func body(vals []*paramValue) map[string]any {
	out := map[string]any{}
	for _, v := range vals {
		if !v.set {
			continue
		}
		if v.p.kind == null {
			if _, ok := out[v.p.field]; !ok { // --no-limits --rpm 5: only rpm
				out[v.p.field] = nil
			}
			continue
		}
		obj, field, nested := strings.Cut(v.p.field, ".")
		if !nested {
			out[obj] = v.val
			continue
		}
		m, _ := out[obj].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out[obj] = m
		}
		m[field] = v.val
	}
	return out
}

// query is the query string of the set values.
func query(vals []*paramValue) url.Values {
	q := url.Values{}
	for _, v := range vals {
		if v.set && v.val != nil {
			q.Set(v.p.field, fmt.Sprint(v.val))
		}
	}
	return q
}

// mergeObjects completes a body's objects (limits, metadata) with the entries of current that the
// command line leaves out, and drops their null entries.
func mergeObjects(b, current map[string]any) {
	for name, v := range b {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		if old, ok := current[name].(map[string]any); ok {
			for k, x := range old {
				if _, set := m[k]; !set {
					m[k] = x
				}
			}
		}
		for k, x := range m {
			if x == nil {
				delete(m, k)
			}
		}
	}
}

func hasObject(b map[string]any) bool {
	for _, v := range b {
		if _, ok := v.(map[string]any); ok {
			return true
		}
	}
	return false
}

// Constructors of the commands every resource has in the same shape.

func listCommand(what, path string, filters ...param) adminCommand {
	return adminCommand{name: "list", about: "list " + what + " (--limit, --offset, --all)", method: http.MethodGet, path: path,
		params: filters, list: true, paged: true}
}

func getCommand(what, path string) adminCommand {
	return idCommand("get", "show "+what, http.MethodGet, path)
}

func updateCommand(path string, params ...param) adminCommand {
	return adminCommand{name: "update", about: "change the fields given by flags", method: http.MethodPatch, path: path,
		arg: "ID", params: params}
}

func idCommand(name, about, method, path string) adminCommand {
	return adminCommand{name: name, about: about, method: method, path: path, arg: "ID"}
}

// pageParams are the flags of a paged list.
var pageParams = []param{
	{"limit", "limit", integer, "at most `N` per page (1 to 1000; the API's default is 100)"},
	{"offset", "offset", integer, "skip the first `N`"},
}

func (r *adminResource) command(name string) *adminCommand {
	for i := range r.commands {
		if r.commands[i].name == name {
			return &r.commands[i]
		}
	}
	return nil
}

// adminEnvNote ends every admin command's usage.
const adminEnvNote = `
Flags may come before or after the argument. --json prints the API's JSON instead of a table
(for list: the array of items, all pages with --all). The admin API is at LLMGATE_ADMIN_URL
(default http://127.0.0.1:8081), with the token in LLMGATE_ADMIN_TOKEN.
`

func (r *adminResource) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: llmgate %s COMMAND [ARG] [flags]\n\nCommands:\n", r.name)
	for _, c := range r.commands {
		fmt.Fprintf(w, "  %-14s %s\n", strings.TrimSpace(c.name+" "+c.argUsage()), c.about)
	}
	fmt.Fprintf(w, "\nSee llmgate %s COMMAND -h for a command's flags.\n%s", r.name, adminEnvNote)
}

func (c *adminCommand) argUsage() string {
	if c.argField != "" {
		return "[" + c.arg + "]"
	}
	return c.arg
}

// run is `llmgate <resource> args…`.
func (r *adminResource) run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		r.usage(stderr)
		return fmt.Errorf("%s: missing command", r.name)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		r.usage(stdout)
		return flag.ErrHelp
	}
	c := r.command(args[0])
	if c == nil {
		r.usage(stderr)
		return fmt.Errorf("%s: unknown command %q", r.name, args[0])
	}
	what := r.name + " " + c.name
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; -h prints below
	asJSON := fs.Bool("json", false, "print the API's JSON instead of a table")
	params := c.params
	var all *bool
	if c.paged {
		params = append(params[:len(params):len(params)], pageParams...)
		all = fs.Bool("all", false, "follow next_offset through every page")
	}
	vals := make([]*paramValue, len(params))
	for i, p := range params {
		vals[i] = &paramValue{p: p}
		fs.Var(vals[i], p.flag, p.usage)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: llmgate %s [flags]\n\n%s%s.\n\nFlags:\n", strings.TrimSpace(what+" "+c.argUsage()),
			strings.ToUpper(c.about[:1]), c.about[1:])
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, adminEnvNote)
		return flag.ErrHelp
	}
	if err != nil {
		return fmt.Errorf("%s: %w (see llmgate %s -h)", what, err, what)
	}
	path, err := c.resolvePath(pos)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	cl, err := adminClientFromEnv()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if c.list {
		page := 0
		if all != nil && *all {
			page = 1000
		}
		items, next, err := cl.list(ctx, path, query(vals), page)
		if err != nil {
			return err
		}
		if next > 0 {
			fmt.Fprintf(stderr, "(more: --offset %d, or --all)\n", next)
		}
		if *asJSON {
			return printJSON(stdout, items)
		}
		return printTable(stdout, r.columns, items)
	}
	var in any
	switch c.method {
	case http.MethodGet, http.MethodDelete:
		if q := query(vals).Encode(); q != "" {
			path += "?" + q
		}
	default:
		if in, err = c.body(ctx, cl, path, pos, vals); err != nil {
			return err
		}
	}
	raw, err := cl.Call(ctx, c.method, path, in)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, raw)
	}
	return printObject(stdout, raw, c.secret, r.columns)
}

// body is the request body of a POST, PUT or PATCH. A PATCH replaces objects (limits,
// metadata) whole, so their entries the flags leave out are read from the current state first.
func (c *adminCommand) body(ctx context.Context, cl *Client, path string, pos []string, vals []*paramValue) (map[string]any, error) {
	b := body(vals)
	if c.argField != "" && len(pos) == 1 {
		b[c.argField] = pos[0]
	}
	var cur map[string]any
	if c.method == http.MethodPatch && hasObject(b) {
		raw, err := cl.Call(ctx, http.MethodGet, path, nil)
		if err == nil {
			err = decodeNumbers(raw, &cur)
		}
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if v.set && v.p.kind == null {
				delete(cur, v.p.field) // --no-metadata --metadata k=v: replaced, not merged
			}
		}
	}
	mergeObjects(b, cur)
	return b, nil
}

// parseInterleaved parses flags that may come before, between or after the positional arguments,
// which it returns; after "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// resolvePath checks the positional arguments and puts a path argument into the path.
func (c *adminCommand) resolvePath(pos []string) (string, error) {
	switch {
	case c.arg == "" && len(pos) > 0:
		return "", fmt.Errorf("unexpected argument %q", pos[0])
	case c.argField != "" && len(pos) > 1:
		return "", fmt.Errorf("want at most one argument %s, got %d", c.arg, len(pos))
	case c.arg != "" && c.argField == "" && len(pos) != 1:
		return "", fmt.Errorf("want one argument %s, got %d", c.arg, len(pos))
	case !strings.Contains(c.path, "{}"):
		return c.path, nil
	}
	arg := url.PathEscape(pos[0])
	if c.slashes {
		arg = strings.ReplaceAll(arg, "%2F", "/")
	}
	return strings.Replace(c.path, "{}", arg, 1), nil
}

// adminClientFromEnv is the client of LLMGATE_ADMIN_URL and LLMGATE_ADMIN_TOKEN.
func adminClientFromEnv() (*Client, error) {
	token := os.Getenv("LLMGATE_ADMIN_TOKEN")
	if token == "" {
		return nil, errors.New("set LLMGATE_ADMIN_TOKEN to an admin token")
	}
	base := os.Getenv("LLMGATE_ADMIN_URL")
	if base == "" {
		base = "http://127.0.0.1:8081"
	}
	return &Client{base: base, token: token}, nil
}

// list fetches a list's items. With pageSize > 0 it follows next_offset to the end, asking for
// pageSize items a page unless the query names a limit; otherwise it fetches one page and returns
// the next page's offset (0: none).
func (c *Client) list(ctx context.Context, path string, q url.Values, pageSize int) ([]json.RawMessage, int, error) {
	if pageSize > 0 && q.Get("limit") == "" {
		q.Set("limit", strconv.Itoa(pageSize))
	}
	items := []json.RawMessage{}
	for {
		p := path
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
		var page struct {
			Data       []json.RawMessage `json:"data"`
			HasMore    bool              `json:"has_more"`
			NextOffset *int              `json:"next_offset"`
		}
		if err := c.Do(ctx, http.MethodGet, p, nil, &page); err != nil {
			return nil, 0, err
		}
		items = append(items, page.Data...)
		if !page.HasMore || page.NextOffset == nil {
			return items, 0, nil
		}
		if pageSize == 0 {
			return items, *page.NextOffset, nil
		}
		q.Set("offset", strconv.Itoa(*page.NextOffset))
	}
}
