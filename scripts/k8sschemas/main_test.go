package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRun converts a small OpenAPI v3 document: a kind's schema gets kubeconform's file name,
// its references inlined (a cycle cut to an empty schema), descriptions and extensions dropped,
// nullable turned into a null type, and unknown properties refused unless the schema preserves
// them.
func TestRun(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	doc := `{"components":{"schemas":{
	  "io.k8s.api.apps.v1.Widget":{"description":"d","type":"object",
	    "x-kubernetes-group-version-kind":[{"group":"apps","version":"v1","kind":"Widget"}],
	    "properties":{"spec":{"allOf":[{"$ref":"#/components/schemas/io.k8s.api.apps.v1.WidgetSpec"}],"default":{}},
	      "note":{"type":"string","nullable":true}}},
	  "io.k8s.api.apps.v1.WidgetSpec":{"type":"object","properties":{
	    "child":{"$ref":"#/components/schemas/io.k8s.api.apps.v1.WidgetSpec"},
	    "free":{"type":"object","x-kubernetes-preserve-unknown-fields":true,"properties":{"a":{"type":"integer"}}}}},
	  "io.k8s.api.core.v1.Thing":{"type":"object","x-kubernetes-group-version-kind":[{"group":"","version":"v1","kind":"Thing"}]}
	}}}`
	if err := os.WriteFile(filepath.Join(in, "apis__apps__v1_openapi.json"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := run(in, out, true)
	if err != nil || n != 2 {
		t.Fatalf("run: %d schemas, %v; want 2", n, err)
	}
	var got any
	b, err := os.ReadFile(filepath.Join(out, "widget-apps-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var want any
	_ = json.Unmarshal([]byte(`{"type":"object","additionalProperties":false,"properties":{
	  "spec":{"allOf":[{"type":"object","additionalProperties":false,"properties":{
	    "child":{},
	    "free":{"type":"object","properties":{"a":{"type":"integer"}}}}}],"default":{}},
	  "note":{"type":["string","null"]}}}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("widget-apps-v1.json:\n got %s\nwant %s", b, mustJSON(want))
	}
	if _, err := os.Stat(filepath.Join(out, "thing-v1.json")); err != nil {
		t.Errorf("the core group's kind: %v", err)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }
