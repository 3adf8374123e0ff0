package gemini

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/llmgate/llmgate/providers/mock"
)

// fanOutSchema is a tool schema of `levels` $defs where each level has `fan` properties that all
// point to the next level: a few hundred bytes that $ref expansion turns into fan^levels nodes.
func fanOutSchema(levels, fan int) string {
	var defs []string
	for l := range levels {
		var props []string
		for p := range fan {
			if l == levels-1 {
				props = append(props, fmt.Sprintf(`"p%d":{"type":"string","description":"leaf"}`, p))
			} else {
				props = append(props, fmt.Sprintf(`"p%d":{"$ref":"#/$defs/L%d"}`, p, l+1))
			}
		}
		defs = append(defs, fmt.Sprintf(`"L%d":{"type":"object","properties":{%s}}`, l, strings.Join(props, ",")))
	}
	return `{"type":"object","properties":{"root":{"$ref":"#/$defs/L0"}},"$defs":{` + strings.Join(defs, ",") + `}}`
}

func toolsBody(name, schema string) string {
	return `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"plain","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}},` +
		`{"type":"function","function":{"name":"` + name + `","parameters":` + schema + `}}]}`
}

// TestGeminiSchemaExpansionBudget: a schema whose $refs fan out exponentially is refused with a
// 400 naming the tool, after producing no more than the expansion budget, instead of growing
// without bound (4^10 nodes, hundreds of MB, before the budget existed).
func TestGeminiSchemaExpansionBudget(t *testing.T) {
	schema := fanOutSchema(9, 4) // 4^9 = 262,144 leaves from ~1.5 KB
	if len(schema) > 2048 {
		t.Fatalf("the schema is %d bytes; the point is that it is small", len(schema))
	}

	// The cleaner itself stops at the budget.
	var b schemaBudget
	out, err := cleanSchema("tools[1].function.parameters", "The JSON Schema of tool \"explode\"", gjson.Parse(schema), &b)
	var re *requestError
	if !errors.As(err, &re) || re.param != "tools[1].function.parameters" || !strings.Contains(re.msg, "$ref") {
		t.Fatalf("cleanSchema = %d bytes, %v; want a requestError on the parameters", len(out), err)
	}
	if b.refNodes > maxRefNodes+1 || b.refBytes > maxRefBytes+4096 {
		t.Errorf("expansion went on to %d nodes and %d bytes; budget %d nodes, %d bytes", b.refNodes, b.refBytes, maxRefNodes, maxRefBytes)
	}

	// The whole translation: a bounded allocation, and the error names the tool.
	body := []byte(toolsBody("explode", schema))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = translateRequest(body)
	runtime.ReadMemStats(&after)
	if !errors.As(err, &re) || re.param != "tools[1].function.parameters" || !strings.Contains(re.msg, `"explode"`) {
		t.Fatalf("translateRequest: %v; want a requestError naming tools[1] and the tool", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
		t.Errorf("translating allocated %d MiB; the budget should keep it to a few", alloc>>20)
	}

	// On the wire: 400 invalid_request_error, and Gemini is never called.
	p, h := mockUpstream(t, mock.Options{})
	resp, err := p.Do(context.Background(), chat(string(body), false))
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	if resp.StatusCode != 400 || gjson.Get(got, "error.type").Str != "invalid_request_error" ||
		gjson.Get(got, "error.param").Str != "tools[1].function.parameters" || !strings.Contains(gjson.Get(got, "error.message").Str, "explode") {
		t.Errorf("HTTP %d %s", resp.StatusCode, got)
	}
	if s := h.Stats(); s.Requests != 0 {
		t.Errorf("the mock saw %d requests", s.Requests)
	}

	// The response_format schema draws on the same budget.
	_, err = translateRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":` + schema + `}}}`))
	if !errors.As(err, &re) || re.param != "response_format.json_schema.schema" {
		t.Errorf("response_format: %v; want a requestError on the schema", err)
	}
}

// TestGeminiSchemaSharedRefsExpand: ordinary schemas that use one definition in several places,
// and a fan-out that stays within the budget, are still expanded in full.
func TestGeminiSchemaSharedRefsExpand(t *testing.T) {
	shared := `{"type":"object","$defs":{"Addr":{"type":"object","properties":{"street":{"type":"string"},"city":{"type":"string"}},"required":["city"]}},` +
		`"properties":{"home":{"$ref":"#/$defs/Addr"},"work":{"$ref":"#/$defs/Addr"},"past":{"type":"array","items":{"$ref":"#/$defs/Addr"}}}}`
	tr, err := translateRequest([]byte(toolsBody("addr", shared)))
	if err != nil {
		t.Fatal(err)
	}
	params := gjson.GetBytes(tr.body, "tools.0.functionDeclarations.1.parameters")
	for _, path := range []string{"properties.home", "properties.work", "properties.past.items"} {
		if got := params.Get(path + ".properties.city.type").Str; got != "string" || params.Get(path+".required.0").Str != "city" {
			t.Errorf("%s not expanded: %s", path, params.Get(path).Raw)
		}
	}

	// 4^5 = 1024 leaves: well within the budget, expanded in full.
	tr, err = translateRequest([]byte(toolsBody("wide", fanOutSchema(5, 4))))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(tr.body), `"leaf"`); n != 1024 {
		t.Errorf("%d leaves in the output, want 1024", n)
	}
}
