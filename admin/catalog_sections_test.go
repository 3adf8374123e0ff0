package admin

import (
	"encoding/json"
	"testing"
)

// TestMergePatch: RFC 7396's own examples (appendix A) that apply to objects.
func TestMergePatch(t *testing.T) {
	for _, tc := range []struct{ doc, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
		{`{"a":"b"}`, `"c"`, `"c"`},
	} {
		got, err := mergePatch([]byte(tc.doc), []byte(tc.patch))
		if err != nil {
			t.Fatalf("%s + %s: %v", tc.doc, tc.patch, err)
		}
		var g, w any
		_ = json.Unmarshal(got, &g)
		_ = json.Unmarshal([]byte(tc.want), &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Errorf("%s + %s = %s, want %s", tc.doc, tc.patch, got, tc.want)
		}
	}
}

// TestSectionSecretsRedacted: redacting a spec blanks the section's secrets in a copy only,
// with a fingerprint for each that is set.
func TestSectionSecretsRedacted(t *testing.T) {
	var spec ProviderSpec
	if err := json.Unmarshal([]byte(`{"type":"bedrock","bedrock":{"region":"eu-west-1","access_key_id":"AKIA1","secret_access_key":"s3cret"}}`), &spec); err != nil {
		t.Fatal(err)
	}
	shown, fps := spec.redacted()
	if shown.Bedrock.SecretAccessKey != "" || shown.Bedrock.Region != "eu-west-1" || len(fps) != 1 || fps["bedrock.secret_access_key"] == "" {
		t.Errorf("redacted %+v, fingerprints %v", shown.Bedrock, fps)
	}
	if spec.Bedrock.SecretAccessKey != "s3cret" {
		t.Error("redacting changed the original spec")
	}
	if err := checkSections(ProviderSpec{Type: "openai", Bedrock: spec.Bedrock}); err == nil {
		t.Error("a bedrock section on an openai provider was accepted")
	}
}
