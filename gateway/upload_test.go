package gateway

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// TestSpoolForModel: a spooled form goes upstream byte for byte, but for the model value when
// the deployment's model differs (or a model part added when the form had none); the parts
// survive intact wherever the model part is, however the body arrives (one byte per read), and
// file content that looks like a delimiter does not fool the placement.
func TestSpoolForModel(t *testing.T) {
	const boundary = "XyZ"
	trick := []byte("RIFF\r\n--XyZX not a delimiter\r\n--XyZ-")
	build := func(parts ...[2]string) []byte {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		_ = w.SetBoundary(boundary)
		for _, p := range parts {
			if p[0] == "file" {
				fw, _ := w.CreateFormFile("file", "a.wav")
				_, _ = fw.Write(trick)
			} else {
				_ = w.WriteField(p[0], p[1])
			}
		}
		_ = w.Close()
		b.WriteString("epilogue")
		return b.Bytes()
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		model string // the deployment's
	}{
		{"model first, same", build([2]string{"model", "whisper"}, [2]string{"file"}), "whisper"},
		{"model first", build([2]string{"model", "whisper"}, [2]string{"file"}), "whisper-1-long-name"},
		{"model after the file", build([2]string{"file"}, [2]string{"model", "w"}, [2]string{"language", "en"}), "whisper-1"},
		{"no model", build([2]string{"file"}, [2]string{"prompt", "x"}), "dall-e-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.CreateTemp(t.TempDir(), "spool")
			if err != nil {
				t.Fatal(err)
			}
			s := &spool{f: f, boundary: boundary, contentType: "multipart/form-data; boundary=" + boundary,
				fields: map[string]string{}, files: map[string]int{}, valueStart: -1, valueEnd: -1}
			defer s.close()
			if err := s.fill(iotest.OneByteReader(bytes.NewReader(tc.body))); err != nil {
				t.Fatal(err)
			}
			if s.size != int64(len(tc.body)) || s.files["file"] != 1 || !bytes.Equal(s.head, trick) {
				t.Fatalf("size %d of %d, files %v, head %q", s.size, len(tc.body), s.files, s.head)
			}
			u := s.forModel(tc.model)
			got, _ := io.ReadAll(u.Open())
			again, _ := io.ReadAll(u.Open())
			if int64(len(got)) != u.Size || !bytes.Equal(got, again) {
				t.Fatalf("size %d, announced %d; second read equal: %v", len(got), u.Size, bytes.Equal(got, again))
			}
			if tc.model == s.fields["model"] && !bytes.Equal(got, tc.body) {
				t.Errorf("same model: body changed")
			}
			mr := multipart.NewReader(bytes.NewReader(got), boundary)
			seen := map[string]string{}
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%v in %q", err, got)
				}
				b, _ := io.ReadAll(p)
				seen[p.FormName()] = string(b)
			}
			if seen["model"] != tc.model || seen["file"] != string(trick) || len(seen) != len(s.fields)+1+map[bool]int{true: 1}[s.valueStart < 0] {
				t.Errorf("upstream parts %q", seen)
			}
			if !strings.HasSuffix(string(got), "--"+boundary+"--\r\nepilogue") {
				t.Errorf("end of body %q", got[len(got)-20:])
			}
		})
	}
}

// TestDelimScanner: the offsets found across writes of any sizes are those found in the whole
// body at once (an opening delimiter without its CRLF at -2).
func TestDelimScanner(t *testing.T) {
	body := []byte("--b1\r\nx\r\n--b1\r\n--b1\r\n--b\r\n--b1--\r\n\r\n--b1")
	var want []int64
	whole := append([]byte("\r\n"), body...)
	for i := 0; ; {
		j := bytes.Index(whole[i:], []byte("\r\n--b1"))
		if j < 0 {
			break
		}
		want = append(want, int64(i+j)-2)
		i += j + 1
	}
	for size := 1; size <= len(body); size++ {
		d := &delimScanner{delim: []byte("\r\n--b1"), carry: []byte("\r\n")}
		for i := 0; i < len(body); i += size {
			_, _ = d.Write(body[i:min(i+size, len(body))])
		}
		if fmt.Sprint(d.found) != fmt.Sprint(want) || d.written != int64(len(body)) {
			t.Errorf("writes of %d: found %v, want %v (written %d)", size, d.found, want, d.written)
		}
	}
}

// FuzzSpool: any body either fails to spool or, when it has a model field, goes upstream as a
// form whose model part is the deployment's and whose other fields are the client's.
func FuzzSpool(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n\r\n--bx\r\n--b--\r\n"))
	f.Add([]byte("--b\nContent-Disposition: form-data; name=\"model\"\n\nm\n--b--\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		file, err := os.CreateTemp(t.TempDir(), "spool")
		if err != nil {
			t.Fatal(err)
		}
		s := &spool{f: file, boundary: "b", contentType: "multipart/form-data; boundary=b",
			fields: map[string]string{}, files: map[string]int{}, valueStart: -1, valueEnd: -1}
		defer s.close()
		if s.fill(bytes.NewReader(body)) != nil || s.valueStart < 0 {
			return
		}
		u := s.forModel("upstream-model")
		got, _ := io.ReadAll(u.Open())
		if int64(len(got)) != u.Size {
			t.Fatalf("%d bytes, announced %d", len(got), u.Size)
		}
		mr := multipart.NewReader(bytes.NewReader(got), "b")
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			v, _ := io.ReadAll(p)
			if p.FormName() == "model" && p.FileName() == "" {
				if string(v) != "upstream-model" {
					t.Fatalf("model part %q in %q", v, got)
				}
				return
			}
		}
		t.Fatalf("no model part in %q", got)
	})
}
