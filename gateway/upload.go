package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/providers"
)

// This file takes in the multipart endpoints' bodies (images/edits, audio transcriptions and
// translations). Such a body can be tens of megabytes of audio or images, and the fields routing
// needs (model, stream, response_format, n…) may come after the file. So the body is spooled to
// an unlinked temporary file as it arrives, bounded by gateway.max_upload_bytes, while
// mime/multipart reads the same bytes to pick out the small fields and check the form; memory
// holds only the fields, a few buffers and the first bytes of the audio file (its WAV header).
// Every attempt then sends the spool from its first byte (failover re-sends it whole), with the
// model part's value replaced by the deployment's upstream model when they differ: the rest goes
// upstream byte for byte, boundary included. The spool is closed, and so gone, when the request
// ends.

// maxFieldBytes bounds one non-file field of a multipart form (a prompt is at most 32,000
// characters at OpenAI).
const maxFieldBytes = 256 << 10

// wavHeadBytes is how much of an audio file is kept to read its length from a WAV header.
const wavHeadBytes = 4 << 10

// errBadMultipart answers a body that is not the multipart/form-data it claims to be.
var errBadMultipart = newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_multipart", "",
	"We could not parse the multipart/form-data body of your request.")

// spool is a multipart body kept on disk, with what the gateway read from its fields.
type spool struct {
	f           *os.File
	size        int64
	contentType string // the client's, boundary included
	boundary    string
	// fields holds the first value of each non-file field; files counts the file parts by name.
	fields map[string]string
	files  map[string]int
	// head is the first bytes of the part named "file" (the audio of a transcription), and
	// fileSize that part's length.
	head     []byte
	fileSize int64
	// valueStart and valueEnd locate the model field's value in the spool; -1 when the form has
	// no model field (one is then added for the upstream). formModel is that value: fields holds
	// the path's model instead when a path names one.
	valueStart, valueEnd int64
	formModel            string
	// closing is the offset of the closing delimiter ("\r\n--boundary--"), before which an added
	// model part goes.
	closing int64
	// release gives back the room the spool reserved.
	release func()
}

// close deletes the spool and gives back its room.
func (s *spool) close() {
	if s == nil {
		return
	}
	if s.f != nil {
		name := s.f.Name()
		s.f.Close()
		_ = os.Remove(name) // already unlinked where the OS allows it
	}
	if s.release != nil {
		s.release()
		s.release = nil
	}
}

// spoolRoom is the room left for upload spools on this replica: bytes reserved before a body is
// read and given back when its spool is closed, so that the disk the spools use together stays
// under gateway.max_upload_spool_bytes however many uploads arrive at once.
type spoolRoom struct {
	used atomic.Int64
}

// reserve takes n bytes of room under limit (negative: no limit); false when they do not fit.
func (r *spoolRoom) reserve(n, limit int64) bool {
	for {
		used := r.used.Load()
		if limit >= 0 && used+n > limit {
			return false
		}
		if r.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// spoolRetryAfter is what a refused upload is told to wait: uploads in flight take seconds.
const spoolRetryAfter = 5 * time.Second

// errUploadSpoolFull answers an upload the spool room cannot take now. It is a 503 (the replica
// is short of room, not the caller over a limit of its own, as a 429 would say) with Retry-After,
// which OpenAI's SDKs retry.
var errUploadSpoolFull = &Error{Status: http.StatusServiceUnavailable, retryAfter: spoolRetryAfter,
	API: api.NewError(api.TypeUnavailable, "upload_spool_full", "", "The gateway is receiving too many uploads at once; retry shortly.")}

// forModel is the body for a deployment whose upstream model is model.
func (s *spool) forModel(model string) *providers.Upload {
	whole := func(off, n int64) io.Reader { return io.NewSectionReader(s.f, off, n) }
	u := &providers.Upload{ContentType: s.contentType, Size: s.size}
	switch {
	case s.valueStart >= 0 && model == s.formModel:
		u.Open = func() io.Reader { return whole(0, s.size) }
	case s.valueStart >= 0:
		u.Size = s.size - (s.valueEnd - s.valueStart) + int64(len(model))
		u.Open = func() io.Reader {
			return io.MultiReader(whole(0, s.valueStart), strings.NewReader(model), whole(s.valueEnd, s.size-s.valueEnd))
		}
	default:
		part := "\r\n--" + s.boundary + "\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n" + model
		u.Size = s.size + int64(len(part))
		u.Open = func() io.Reader {
			return io.MultiReader(whole(0, s.closing), strings.NewReader(part), whole(s.closing, s.size-s.closing))
		}
	}
	return u
}

// readUpload spools the request's multipart body and reads its fields. Its errors are the
// client's: a body that is not multipart/form-data or does not parse (400), one over
// max_upload_bytes (413), a body that does not arrive in time (408).
func (x *exchange) readUpload() (*spool, error) {
	r := x.c.Request
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" || len(params["boundary"]) > 70 {
		return nil, newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_content_type", "",
			"This endpoint takes a multipart/form-data body (Content-Type: multipart/form-data; boundary=…).")
	}
	max := x.g.opts.MaxUploadBytes
	if r.ContentLength > max {
		return nil, errTooLarge
	}
	// The room is reserved before a byte is read: the body can be no longer than its
	// Content-Length (net/http holds it there), or than max without one.
	room := r.ContentLength
	if room < 0 {
		room = max
	}
	if !x.g.spooled.reserve(room, x.g.opts.MaxUploadSpoolBytes) {
		x.g.metrics.spoolRefused.Inc()
		return nil, errUploadSpoolFull
	}
	x.g.metrics.spoolBytes.Add(float64(room))
	release := func() {
		x.g.spooled.used.Add(-room)
		x.g.metrics.spoolBytes.Sub(float64(room))
	}
	f, err := os.CreateTemp(x.g.opts.UploadDir, "llmgate-upload-*")
	if err != nil {
		release()
		x.g.log.Error("cannot spool an upload", "request_id", x.rec.RequestID, "err", err)
		return nil, errInternal
	}
	_ = os.Remove(f.Name()) // the open file stays readable; nothing is left behind by a crash
	s := &spool{f: f, contentType: r.Header.Get("Content-Type"), boundary: params["boundary"],
		fields: map[string]string{}, files: map[string]int{}, valueStart: -1, valueEnd: -1, release: release}
	if err := s.fill(http.MaxBytesReader(x.c.Writer, r.Body, max)); err != nil {
		s.close()
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return nil, errTooLarge
		case isTimeout(err):
			return nil, errBodyTimeout
		case x.ctx.Err() != nil:
			return nil, x.ctx.Err()
		}
		var ge *Error
		if errors.As(err, &ge) {
			return nil, ge
		}
		return nil, errBadMultipart
	}
	_ = http.NewResponseController(x.c.Writer).SetReadDeadline(time.Time{})
	x.c.Writer.Header().Del("Connection")
	return s, nil
}

// fill copies body into the spool while parsing it, then finds the model value's place.
func (s *spool) fill(body io.Reader) error {
	w := bufio.NewWriterSize(s.f, 32<<10)
	delims := &delimScanner{delim: []byte("\r\n--" + s.boundary), carry: []byte("\r\n")}
	tee := io.TeeReader(body, io.MultiWriter(w, delims))
	mr := multipart.NewReader(tee, s.boundary)
	modelPart := -1
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := p.FormName()
		if p.FileName() != "" || isFilePart(name) {
			s.files[name]++
			first := name == "file" && s.head == nil
			if first {
				s.head = make([]byte, wavHeadBytes)
				n, err := io.ReadFull(p, s.head)
				s.head, s.fileSize = s.head[:n], int64(n)
				if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
					return err
				}
			}
			n, err := io.Copy(io.Discard, p)
			if err != nil {
				return err
			}
			if first {
				s.fileSize += n
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil {
			return err
		}
		if len(v) > maxFieldBytes {
			return newError(http.StatusBadRequest, api.TypeInvalidRequest, "field_too_long", name, "The form field "+name+" is too long.")
		}
		if _, seen := s.fields[name]; !seen {
			s.fields[name] = string(v)
			if name == "model" {
				modelPart = i
			}
		}
	}
	// The epilogue after the closing delimiter is part of the body too.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	s.size = delims.written
	return s.locate(delims.found, modelPart)
}

// isFilePart reports whether a part carries a file even when the client gave it no filename.
func isFilePart(name string) bool {
	return name == "file" || name == "image" || name == "image[]" || name == "mask"
}

// locate finds the model value and the closing delimiter in the spool. candidates are the
// offsets of "\r\n--boundary" in the body; those followed by neither "--" nor a line end are
// file content and skipped, as mime/multipart skips them. Part i starts after delimiter i.
func (s *spool) locate(candidates []int64, modelPart int) error {
	dl := int64(len("\r\n--" + s.boundary))
	var delims []int64
	tail := make([]byte, 2)
	for _, off := range candidates {
		n, _ := s.f.ReadAt(tail, off+dl)
		t := string(tail[:n])
		if t == "--" || t == "\r\n" || strings.HasPrefix(t, " ") || strings.HasPrefix(t, "\t") || strings.HasPrefix(t, "\n") {
			delims = append(delims, off)
		}
	}
	if len(delims) < 2 {
		return errBadMultipart
	}
	s.closing = delims[len(delims)-1]
	if modelPart < 0 {
		return nil
	}
	if modelPart+1 >= len(delims) {
		return errBadMultipart
	}
	start, end := delims[modelPart]+dl, delims[modelPart+1]
	if start >= end || end-start > maxFieldBytes+16<<10 {
		return errBadMultipart
	}
	part := make([]byte, end-start)
	if _, err := s.f.ReadAt(part, start); err != nil {
		return err
	}
	i := bytes.Index(part, []byte("\r\n\r\n"))
	if i < 0 || string(part[i+4:]) != s.fields["model"] {
		// A form this reading does not place exactly (bare LF line ends): refuse it rather than
		// send the upstream a model the gateway did not route.
		return errBadMultipart
	}
	s.valueStart, s.valueEnd, s.formModel = start+int64(i)+4, end, s.fields["model"]
	return nil
}

// delimScanner records the offsets of a delimiter in the bytes written to it, across writes,
// without copying them: each write is searched in place, and only the seam with the previous
// write (its last len(delim)-1 bytes, kept in carry) is searched in a small buffer. It starts
// with carry "\r\n" before offset 0, so an opening delimiter without a CRLF before it is found
// at offset -2.
type delimScanner struct {
	delim []byte
	carry []byte // the last bytes seen, at most len(delim)-1
	seam  []byte // scratch for carry + the start of a write
	found []int64
	// written counts the bytes written: the body's size once it is all in.
	written int64
}

func (d *delimScanner) Write(p []byte) (int, error) {
	start := d.written // the offset of p[0]
	d.written += int64(len(p))
	k := len(d.delim) - 1
	// Matches that begin in carry and end in p.
	d.seam = append(append(d.seam[:0], d.carry...), p[:min(len(p), k)]...)
	for i := 0; i < len(d.carry); i++ {
		if bytes.HasPrefix(d.seam[i:], d.delim) {
			d.found = append(d.found, start-int64(len(d.carry)-i))
		}
	}
	for i := 0; ; {
		j := bytes.Index(p[i:], d.delim)
		if j < 0 {
			break
		}
		d.found = append(d.found, start+int64(i+j))
		i += j + len(d.delim)
	}
	if len(p) >= k {
		d.carry = append(d.carry[:0], p[len(p)-k:]...)
	} else {
		d.carry = append(d.carry[:0], d.seam[len(d.seam)-min(len(d.seam), k):]...)
	}
	return len(p), nil
}

// uploadRequest checks a spooled form and picks out what routing, admission and metering need.
func uploadRequest(ep providers.Endpoint, s *spool) (request, error) {
	bad := func(code, param, msg string) (request, error) {
		return request{}, newError(http.StatusBadRequest, api.TypeInvalidRequest, code, param, msg)
	}
	r := request{upload: s, media: true}
	model, hasModel := s.fields["model"]
	if !hasModel && ep == providers.ImageEdits {
		model, r.defaulted = defaultModels[providers.ImageGenerations], true
	}
	if model == "" {
		return bad("missing_model", "model", "You must provide a model parameter.")
	}
	if strings.ContainsFunc(model, unicode.IsControl) {
		return bad("invalid_value", "model", "The model name must not contain control characters.")
	}
	r.model = model
	format := s.fields["response_format"]
	switch ep {
	case providers.ImageEdits:
		if s.files["image"]+s.files["image[]"] == 0 {
			return bad("missing_field", "image", "You must provide an image file (image, or image[] for several).")
		}
		if s.fields["prompt"] == "" {
			return bad("missing_field", "prompt", "You must provide a prompt.")
		}
		if format != "" && format != "url" && format != "b64_json" {
			return bad("invalid_value", "response_format", "response_format must be url or b64_json.")
		}
		r.image = imageRequest{n: 1, size: s.fields["size"], quality: s.fields["quality"]}
		if n, ok := s.fields["n"]; ok {
			v, err := parseCount(n)
			if err != nil {
				return bad("invalid_value", "n", "n must be an integer from 1 to 10.")
			}
			r.image.n = v
		}
	default:
		if s.files["file"] == 0 {
			return bad("missing_field", "file", "You must provide the audio file to "+map[bool]string{true: "transcribe", false: "translate"}[ep == providers.AudioTranscriptions]+" (the file field).")
		}
		formats := "json, text, srt, verbose_json or vtt"
		ok := format == "" || format == "json" || format == "text" || format == "srt" || format == "verbose_json" || format == "vtt"
		if ep == providers.AudioTranscriptions {
			formats = "json, text, srt, verbose_json, vtt or diarized_json"
			ok = ok || format == "diarized_json"
		}
		if !ok {
			return bad("invalid_value", "response_format", "response_format must be "+formats+".")
		}
	}
	if ep == providers.AudioTranscriptions || ep == providers.ImageEdits {
		switch s.fields["stream"] {
		case "", "false":
		case "true":
			r.stream = true
		default:
			return bad("invalid_type", "stream", "stream must be true or false.")
		}
	}
	return r, nil
}

// parseCount reads a form's n: an integer from 1 to maxImages.
func parseCount(s string) (int64, error) {
	var n int64
	if s == "" || len(s) > 2 {
		return 0, errBadMultipart
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, errBadMultipart
		}
		n = n*10 + int64(c-'0')
	}
	if n < 1 || n > maxImages {
		return 0, errBadMultipart
	}
	return n, nil
}
