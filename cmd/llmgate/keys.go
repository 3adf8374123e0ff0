package main

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
	"strings"
	"text/tabwriter"
	"time"
)

// adminClient calls the admin API, as the CLI and the demo do.
type adminClient struct {
	base  string
	token string
	http  http.Client
}

type createKeyBody struct {
	Name      string     `json:"name,omitempty"`
	Models    []string   `json:"models,omitempty"`
	UserID    string     `json:"user_id,omitempty"`
	Tier      string     `json:"tier,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

type keyJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	UserID    string     `json:"user_id"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	CreatedAt time.Time  `json:"created_at"`
	Key       string     `json:"key,omitempty"`
}

// do sends a request and decodes a 2xx JSON answer into out; other answers become errors carrying
// the API's message.
func (c *adminClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	c.http.Timeout = 30 * time.Second
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("admin API: %s (HTTP %d)", e.Error.Message, resp.StatusCode)
		}
		return fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func (c *adminClient) createKey(ctx context.Context, b createKeyBody) (keyJSON, error) {
	var k keyJSON
	return k, c.do(ctx, http.MethodPost, "/admin/keys", b, &k)
}

const keysUsage = `Usage:
  llmgate keys create [--name N] [--models m1,m2] [--user ID] [--tier T] [--expires RFC3339] [--json]
  llmgate keys list   [--user ID] [--json]
  llmgate keys get    ID [--json]
  llmgate keys revoke ID [--json]

The admin API is at LLMGATE_ADMIN_URL (default http://127.0.0.1:8081) with the token in
LLMGATE_ADMIN_TOKEN.
`

func keysCmd(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, keysUsage)
		if len(args) == 0 {
			return errors.New("keys: missing subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	name := fs.String("name", "", "key name")
	models := fs.String("models", "", "comma-separated allowlist of public models (empty: all)")
	user := fs.String("user", "", "owner user id (created in the default tenant if new)")
	tier := fs.String("tier", "", "tier of a user created on the fly")
	expires := fs.String("expires", "", "expiry time, RFC 3339")
	// Accept flags after the positional id too ("keys revoke ID --json").
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	token := os.Getenv("LLMGATE_ADMIN_TOKEN")
	if token == "" {
		return errors.New("keys: set LLMGATE_ADMIN_TOKEN to the admin token")
	}
	base := os.Getenv("LLMGATE_ADMIN_URL")
	if base == "" {
		base = "http://127.0.0.1:8081"
	}
	c := &adminClient{base: base, token: token}
	ctx := context.Background()
	needID := func() (string, error) {
		if len(pos) != 1 {
			return "", fmt.Errorf("keys %s: want exactly one key id", sub)
		}
		return pos[0], nil
	}
	switch sub {
	case "create":
		b := createKeyBody{Name: *name, UserID: *user, Tier: *tier}
		if *models != "" {
			b.Models = strings.Split(*models, ",")
		}
		if *expires != "" {
			t, err := time.Parse(time.RFC3339, *expires)
			if err != nil {
				return fmt.Errorf("keys create: --expires: %w", err)
			}
			b.ExpiresAt = &t
		}
		k, err := c.createKey(ctx, b)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, k)
		}
		printKeys(stdout, []keyJSON{k})
		fmt.Fprintf(stdout, "\nkey (shown once): %s\n", k.Key)
		return nil
	case "list":
		var out struct {
			Data []keyJSON `json:"data"`
		}
		path := "/admin/keys?limit=1000"
		if *user != "" {
			path += "&user_id=" + url.QueryEscape(*user)
		}
		if err := c.do(ctx, http.MethodGet, path, nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, out.Data)
		}
		printKeys(stdout, out.Data)
		return nil
	case "get", "revoke":
		id, err := needID()
		if err != nil {
			return err
		}
		method := http.MethodGet
		if sub == "revoke" {
			method = http.MethodDelete
		}
		var k keyJSON
		if err := c.do(ctx, method, "/admin/keys/"+url.PathEscape(id), nil, &k); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, k)
		}
		printKeys(stdout, []keyJSON{k})
		return nil
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("keys: unknown subcommand %q", sub)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printKeys(w io.Writer, keys []keyJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tUSER\tMODELS\tEXPIRES\tREVOKED")
	for _, k := range keys {
		models := "*"
		if len(k.Models) > 0 {
			models = strings.Join(k.Models, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.Prefix, dash(k.UserID), models, timeOrDash(k.ExpiresAt), timeOrDash(k.RevokedAt))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
