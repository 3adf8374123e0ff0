// Package console is the admin web console: a few static files (HTML, CSS and JavaScript modules,
// no build step) embedded in the binary and served by the admin listener under /console/. The
// console is only a client of the admin API on the same origin; it signs in through
// POST /admin/session and keeps no secret anywhere but in the HttpOnly session cookie and, for the
// CSRF token, in JavaScript memory. See docs/console.md.
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var files embed.FS

// ContentSecurityPolicy is sent with every console file: only the console's own scripts, styles
// and the admin API on the same origin; no inline script or style, no framing, no forms elsewhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console's files; the request path is taken relative to prefix ("/console/").
type Handler struct {
	prefix string
	load   sync.Once
	assets map[string]asset // filled by load
}

// New returns the handler. The embedded files are read (and their ETags hashed) once, on the first
// request: most gateways never open the console, and would otherwise hold a copy of them.
func New(prefix string) *Handler {
	return &Handler{prefix: prefix}
}

// files returns the assets, reading them on the first call.
func (h *Handler) files() map[string]asset {
	h.load.Do(h.read)
	return h.assets
}

// read reads the embedded files into h.assets.
func (h *Handler) read() {
	h.assets = map[string]asset{}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.assets[strings.TrimPrefix(p, "static/")] = asset{body: b, ctype: contentType(p), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("console: reading the embedded files: " + err.Error()) // a broken build, not a run-time condition
	}
}

// Size is the total size of the embedded files, in bytes.
func (h *Handler) Size() int {
	n := 0
	for _, a := range h.files() {
		n += len(a.body)
	}
	return n
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}

// SecurityHeaders are set on every console answer, found or not.
func SecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// ServeHTTP answers one file: "" and "index.html" are the shell, served never cached; the other
// files are revalidated by ETag.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w)
	name := strings.TrimPrefix(r.URL.Path, h.prefix)
	if name == "" {
		name = "index.html"
	}
	a, ok := h.files()[name]
	if !ok || strings.Contains(name, "..") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("Not found.\n"))
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	if strings.HasSuffix(name, ".html") {
		w.Header().Set("Cache-Control", "no-store")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", a.etag)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
