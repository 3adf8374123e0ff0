package openai

import "testing"

func TestParseBaseURL(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		wantErr string // "" for none
	}{
		{"https://api.anthropic.com", ""},
		{"http://127.0.0.1:9/v1beta/", ""},
		{"https://user:secret@proxy.internal/v1", ""},
		{"ftp://x", `base_url: want an http(s) URL, got "ftp://x"`},
		{"https://", `base_url: want an http(s) URL, got "https:"`},
		{"/v1", `base_url: want an http(s) URL, got "/v1"`},
		{"ftp://sk-user:secret@x", `base_url: want an http(s) URL, got "ftp://redacted@x"`},
		{"://", "base_url: not a valid URL"},
		{"https://user:secret@h/\x7f", "base_url: not a valid URL"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			u, err := ParseBaseURL(tc.raw)
			switch {
			case tc.wantErr == "" && (err != nil || u == nil):
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("error %v, want %s", err, tc.wantErr)
			}
		})
	}
}
