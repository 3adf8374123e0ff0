package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestFilesKeepTheRules reads every embedded file for what the console's CSP and its rules
// forbid, so a page added later is held to them before a browser ever runs it: markup from
// strings (innerHTML and its kin), code from strings (eval, new Function), inline scripts, styles
// and event handlers in the HTML, and any address off this origin (a CDN, a font, an API).
func TestFilesKeepTheRules(t *testing.T) {
	forbiddenJS := regexp.MustCompile(`\.innerHTML|\.outerHTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(\s*['"](style|on\w+)['"]|import\(\s*['"]https?:`)
	forbiddenHTML := regexp.MustCompile(`(?i)\sstyle\s*=|<style|\son[a-z]+\s*=|<script[^>]*>[^<]`)
	scriptTag := regexp.MustCompile(`(?i)<script[^>]*>`)
	offOrigin := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	n := 0
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			code := line
			if strings.HasSuffix(p, ".js") {
				if strings.HasPrefix(strings.TrimSpace(line), "//") || strings.HasPrefix(strings.TrimSpace(line), "*") {
					continue // a comment may name what it forbids
				}
				if m := forbiddenJS.FindString(code); m != "" {
					t.Errorf("%s:%d: %q is forbidden in the console (build the DOM with el(); no code from strings)", p, i+1, m)
				}
			}
			if strings.HasSuffix(p, ".html") {
				if m := forbiddenHTML.FindString(code); m != "" {
					t.Errorf("%s:%d: %q: no inline script, style or event handler (the CSP refuses them)", p, i+1, m)
				}
				for _, tag := range scriptTag.FindAllString(code, -1) {
					if !strings.Contains(tag, " src=") {
						t.Errorf("%s:%d: %q: a script without src is inline (the CSP refuses it)", p, i+1, tag)
					}
				}
			}
			for _, m := range offOrigin.FindAllString(code, -1) {
				if m != "http://www.w3.org" && !strings.HasSuffix(m, "//www.w3.org") {
					t.Errorf("%s:%d: %q: the console fetches nothing but its own origin", p, i+1, m)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("only %d embedded files", n)
	}
}

// TestHandlerServesEveryFile: each embedded file is served under the prefix with a type a
// browser accepts for it (a module script must be JavaScript).
func TestHandlerServesEveryFile(t *testing.T) {
	h := New("/console/")
	if h.Size() == 0 {
		t.Fatal("no files")
	}
	for name, a := range h.assets {
		if a.ctype == "application/octet-stream" {
			t.Errorf("%s: no content type for its extension", name)
		}
	}
	if _, ok := h.assets["index.html"]; !ok {
		t.Error("no index.html")
	}
}

// TestNewReadsNothing: the console's files are read on its first request, not when the admin
// handler is built, so a gateway whose console is never opened holds no copy of them.
func TestNewReadsNothing(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h := New("/console/")
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<10 {
		t.Fatalf("New allocated %.1f KiB; want at most 4 KiB (the files read on first use)", float64(got)/1024)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/console/index.html", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<html") {
		t.Fatalf("first request: %d %.80q; want the index page", rec.Code, rec.Body.String())
	}
}
