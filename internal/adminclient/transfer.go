package adminclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
)

// Fetching beyond one request: lists the API pages by number, and downloads streamed to a file.

// numberedPageParams are the flags of a list the API pages by number (the usage audit).
var numberedPageParams = []param{
	{"page", "page", integer, "page `N`, from 1"},
	{"size", "size", integer, "`N` items a page (1 to 1000; the API's default is 50)"},
}

// numberedPages fetches a list paged by number (page, size). With all it fetches every page
// (1000 items each unless the query names a size) until one comes back short; otherwise one page,
// and says how to ask for the next one when that page was full.
func (c *Client) numberedPages(ctx context.Context, path string, q url.Values, all bool) ([]json.RawMessage, string, error) {
	if all && q.Get("size") == "" {
		q.Set("size", "1000")
	}
	page := 1
	if p := q.Get("page"); p != "" {
		page, _ = strconv.Atoi(p)
	}
	items := []json.RawMessage{}
	for {
		q.Set("page", strconv.Itoa(page))
		var got struct {
			Data []json.RawMessage `json:"data"`
			Size int               `json:"size"`
		}
		if err := c.Do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &got); err != nil {
			return nil, "", err
		}
		items = append(items, got.Data...)
		full := got.Size > 0 && len(got.Data) >= got.Size
		if !full {
			return items, "", nil
		}
		if !all {
			return items, fmt.Sprintf("--page %d", page+1), nil
		}
		page++
	}
}

// download writes the answer of a GET to the file out ("" or "-": w) as it arrives. A file is
// written beside its final name and renamed into place only when the whole answer has arrived, so
// a failed export never leaves a truncated file under that name.
func download(ctx context.Context, cl *Client, path, out string, w io.Writer) error {
	if out == "" || out == "-" {
		return cl.Download(ctx, path, w)
	}
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	err = cl.Download(ctx, path, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), out)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
