package adminclient

import (
	"bytes"
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

// The admin CLI: `llmgate RESOURCE COMMAND [ARG…] [flags]` (resources.go, operations.go). Each
// command is one request to the admin API, described by an adminCommand; this file turns its
// arguments and flags into the request's path, body and query, sends it and prints the answer
// (output.go).

// adminResource is one noun of the admin CLI.
type adminResource struct {
	name     string // "keys", as typed
	commands []adminCommand
	columns  []column // the table of its lists
	// defaultCommand runs when the resource is followed by flags only (audit-log).
	defaultCommand string
}

// adminCommand is one request to the admin API.
type adminCommand struct {
	name, about string
	method      string
	// path of the request; each "{}" stands for the next positional argument, escaped.
	path string
	// arg names the positional arguments in usage, space-separated ("ID", "TYPE ID"); "" for
	// none. Each is required.
	arg string
	// argField, when set, makes the (single) argument optional and sends it as this body field
	// instead.
	argField string
	// valueArg, when set, is the last positional argument: a body field rather than a part of the
	// path (deployments weight ID N).
	valueArg *param
	// slashes keeps "/" in the arguments as path separators (model and deployment names).
	slashes bool
	// params are the flags that become body fields (or query parameters of a GET or DELETE).
	params []param
	// query are flags that become query parameters whatever the method (the model of a policy).
	query []param
	// fixed are body fields the command always sends (enable: {"enabled": true}).
	fixed map[string]any
	// list: the answer is {"data": [...]}; a paged list also takes --limit, --offset and --all,
	// a list paged by number (pages) --page, --size and --all.
	list, paged, pages bool
	// secret is the field of the answer holding a plaintext shown only once.
	secret string
	// omit are fields of the answer the table leaves out (--json shows them).
	omit []string
	// done is printed for an answer without a body (204), unless --json.
	done string
	// render, when set, prints the answer as a table instead of printObject.
	render func(w io.Writer, raw []byte) error
	// download streams the answer's body to --out (default: stdout) as it arrives.
	download bool
}

// paramKind says how a flag's text becomes a JSON value.
type paramKind int

const (
	text      paramKind = iota // a string as typed
	list                       // comma-separated strings; empty: null
	integer                    // a whole number; empty: null
	money                      // a decimal USD amount, sent as a string; empty: null
	signed                     // money that may be negative (an adjustment)
	past                       // RFC 3339, a date (2026-11-01) or a duration before now; empty: null
	instant                    // RFC 3339 or a duration from now; empty: null
	seconds                    // a duration (or whole seconds), sent as whole seconds; empty: null
	pairs                      // key=value, repeatable, into an object; "key=" is null
	flagTrue                   // a boolean flag, sent as true
	null                       // a boolean flag that sends null: clears the field
	jsonValue                  // a JSON value as typed (a list of objects); empty: null
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
	case jsonValue:
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, errors.New("want JSON, such as [{\"provider\":\"p\",\"model\":\"m\"}]")
		}
		return v, nil
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
	case signed:
		if !usdAmount.MatchString(strings.TrimPrefix(s, "-")) {
			return nil, errors.New("want a USD amount such as 12.50 or -3 (at most 6 decimals)")
		}
		return s, nil
	case past:
		if _, err := time.Parse(time.RFC3339, s); err == nil {
			return s, nil
		}
		if _, err := time.Parse(time.DateOnly, s); err == nil {
			return s, nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return nil, errors.New("want an RFC 3339 time, a date (2026-11-01) or a duration before now (24h)")
		}
		return time.Now().Add(-d).UTC().Truncate(time.Second).Format(time.RFC3339), nil
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
	if r.defaultCommand != "" {
		fmt.Fprintf(w, "Usage: llmgate %s [COMMAND] [ARG…] [flags] (default command: %s)\n\nCommands:\n", r.name, r.defaultCommand)
	} else {
		fmt.Fprintf(w, "Usage: llmgate %s COMMAND [ARG…] [flags]\n\nCommands:\n", r.name)
	}
	width := 14
	for _, c := range r.commands {
		width = max(width, len(c.name)+1+len(c.argUsage()))
	}
	for _, c := range r.commands {
		fmt.Fprintf(w, "  %-*s %s\n", width, strings.TrimSpace(c.name+" "+c.argUsage()), c.about)
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
	if args = r.withDefault(args); len(args) == 0 {
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
	switch {
	case c.paged:
		params = append(params[:len(params):len(params)], pageParams...)
		all = fs.Bool("all", false, "follow next_offset through every page")
	case c.pages:
		params = append(params[:len(params):len(params)], numberedPageParams...)
		all = fs.Bool("all", false, "fetch every page (1000 a page unless --size says)")
	}
	var out *string
	if c.download {
		out = fs.String("out", "", "write to `FILE` (replaced only once the whole answer has arrived; default: stdout)")
	}
	vals := make([]*paramValue, len(params))
	for i, p := range params {
		vals[i] = &paramValue{p: p}
		fs.Var(vals[i], p.flag, p.usage)
	}
	qvals := make([]*paramValue, len(c.query))
	for i, p := range c.query {
		qvals[i] = &paramValue{p: p}
		fs.Var(qvals[i], p.flag, p.usage)
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
	var value any
	if c.valueArg != nil {
		if value, err = c.valueArg.parse(pos[len(pos)-1]); err != nil {
			return fmt.Errorf("%s: invalid %s %q: %w", what, c.valueArg.flag, pos[len(pos)-1], err)
		}
	}
	cl, err := adminClientFromEnv()
	if err != nil {
		return err
	}
	ctx := context.Background()
	fetchAll := all != nil && *all
	if c.list && c.method == http.MethodGet {
		var items []json.RawMessage
		var more string
		if c.pages {
			items, more, err = cl.numberedPages(ctx, path, query(vals), fetchAll)
		} else {
			page := 0
			if fetchAll {
				page = 1000
			}
			var next int
			items, next, err = cl.list(ctx, path, query(vals), page)
			if next > 0 {
				more = fmt.Sprintf("--offset %d", next)
			}
		}
		if err != nil {
			return err
		}
		if more != "" {
			fmt.Fprintf(stderr, "(more: %s, or --all)\n", more)
		}
		if *asJSON {
			return printJSON(stdout, items)
		}
		return printTable(stdout, r.columns, items)
	}
	var in any
	switch c.method {
	case http.MethodGet, http.MethodDelete:
		qvals = append(qvals, vals...)
	default:
		b, err := c.body(ctx, cl, path, pos, vals)
		if err != nil {
			return err
		}
		for k, v := range c.fixed {
			b[k] = v
		}
		if c.valueArg != nil {
			b[c.valueArg.field] = value
		}
		in = b
	}
	if q := query(qvals).Encode(); q != "" {
		path += "?" + q
	}
	if c.download {
		return download(ctx, cl, path, *out, stdout)
	}
	raw, err := cl.Call(ctx, c.method, path, in)
	if err != nil {
		return err
	}
	return c.printAnswer(stdout, raw, *asJSON, r.columns)
}

// printAnswer prints the answer of a request other than a GET of a list: as JSON, or as the
// command's table.
func (c *adminCommand) printAnswer(w io.Writer, raw []byte, asJSON bool, cols []column) error {
	if len(bytes.TrimSpace(raw)) == 0 { // 204
		if !asJSON && c.done != "" {
			fmt.Fprintln(w, c.done)
		}
		return nil
	}
	if c.list { // a change answered with the subject's list (quota set)
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("admin API: unexpected list: %w", err)
		}
		if asJSON {
			return printJSON(w, page.Data)
		}
		return printTable(w, cols, page.Data)
	}
	switch {
	case asJSON:
		return printJSON(w, json.RawMessage(raw))
	case c.render != nil:
		return c.render(w, raw)
	}
	return printObject(w, raw, c.secret, c.omit, cols)
}

// withDefault puts the default command in front of arguments that start with a flag, or of none.
func (r *adminResource) withDefault(args []string) []string {
	if r.defaultCommand == "" {
		return args
	}
	if len(args) == 0 || (strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help") {
		return append([]string{r.defaultCommand}, args...)
	}
	return args
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

// resolvePath checks the positional arguments and puts the path arguments into the path.
func (c *adminCommand) resolvePath(pos []string) (string, error) {
	names := strings.Fields(c.arg)
	switch {
	case c.arg == "" && len(pos) > 0:
		return "", fmt.Errorf("unexpected argument %q", pos[0])
	case c.argField != "" && len(pos) > 1:
		return "", fmt.Errorf("want at most one argument %s, got %d", c.arg, len(pos))
	case c.argField == "" && len(names) == 1 && len(pos) != 1:
		return "", fmt.Errorf("want one argument %s, got %d", c.arg, len(pos))
	case c.argField == "" && len(pos) != len(names):
		return "", fmt.Errorf("want arguments %s, got %d", c.arg, len(pos))
	}
	path := c.path
	for _, p := range pos {
		if !strings.Contains(path, "{}") {
			break
		}
		arg := url.PathEscape(p)
		if c.slashes {
			arg = strings.ReplaceAll(arg, "%2F", "/")
		}
		path = strings.Replace(path, "{}", arg, 1)
	}
	return path, nil
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
