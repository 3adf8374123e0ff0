package adminclient

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/tidwall/gjson"
)

// experimentParams are the fields of an experiment that create and update set alike.
var experimentParams = []param{
	{"description", "description", text, "what the experiment tries (`text`)"},
	{"variants", "variants", jsonValue, "the variants as `JSON`: [{\"name\":\"a\",\"weight\":50},{\"name\":\"b\",\"model\":\"m2\",\"deployment\":\"p/m2\",\"weight\":50}] (model: default the experiment's)"},
	{"exclude-keys", "exclude_keys", list, "key `ids` kept out, comma-separated"},
	{"exclude-tenants", "exclude_tenants", list, "tenant `ids` kept out, comma-separated"},
}

// experimentsResource is `llmgate experiments`: A/B experiments and their results.
var experimentsResource = adminResource{
	name: "experiments",
	columns: []column{{"ID", "id", ""}, {"MODEL", "model", ""}, {"STATE", "state", ""}, {"VARIANTS", "variants.#.name", "*"},
		{"UPDATED", "updated_at", ""}, {"UPDATED_BY", "updated_by", ""}},
	commands: []adminCommand{
		{name: "create", about: "create an experiment on a public model, as a draft (start it to split the traffic)",
			method: http.MethodPost, path: "/admin/experiments", arg: "ID", argField: "id", params: append([]param{
				{"model", "model", text, "the public `model` whose traffic is split (required)"},
				{"salt", "salt", text, "the `salt` that decides who gets which variant (default: random)"}}, experimentParams...)},
		listCommand("experiments, every state", "/admin/experiments"),
		getCommand("an experiment", "/admin/experiments/{}"),
		updateCommand("/admin/experiments/{}", experimentParams...),
		idCommand("start", "start (or resume) the experiment on every replica", http.MethodPost, "/admin/experiments/{}/start"),
		idCommand("pause", "pause it: its model routes as if there were none", http.MethodPost, "/admin/experiments/{}/pause"),
		idCommand("stop", "stop it for good (its results stay)", http.MethodPost, "/admin/experiments/{}/stop"),
		{name: "results", about: "per variant: requests, errors, latency and TTFT p50/p95, tokens and cost per request",
			method: http.MethodGet, path: "/admin/experiments/{}/results", arg: "ID", render: printExperimentResults},
	},
}

// printExperimentResults prints an experiment's results as a table, a row per variant.
func printExperimentResults(w io.Writer, raw []byte) error {
	if !gjson.ValidBytes(raw) {
		return fmt.Errorf("admin API: unexpected experiment results")
	}
	r := gjson.ParseBytes(raw)
	fmt.Fprintf(w, "experiment: %s  model: %s  state: %s\n\n", r.Get("experiment").Str, r.Get("model").Str, r.Get("state").Str)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIANT\tMODEL\tREQUESTS\tERRORS\tERROR_RATE\tP50_MS\tP95_MS\tTTFT_P50\tTTFT_P95\tTOKENS/REQ\tCOST_USD/REQ\tPRICED")
	num := func(v gjson.Result) string {
		if !v.Exists() || v.Type == gjson.Null {
			return "-"
		}
		return v.Raw
	}
	ratio := func(v gjson.Result) string {
		if !v.Exists() || v.Type == gjson.Null {
			return "-"
		}
		return fmt.Sprintf("%.4g", v.Float())
	}
	for _, v := range r.Get("variants").Array() {
		model := v.Get("model").Str
		if d := v.Get("deployment").Str; d != "" {
			model += " (" + d + ")"
		}
		fmt.Fprintln(tw, strings.Join([]string{v.Get("variant").Str, cell(model), num(v.Get("requests")), num(v.Get("errors")),
			ratio(v.Get("error_rate")), num(v.Get("latency_ms.p50")), num(v.Get("latency_ms.p95")), num(v.Get("ttft_ms.p50")),
			num(v.Get("ttft_ms.p95")), ratio(v.Get("tokens_per_request")), cell(v.Get("cost_usd_per_request").Value()),
			num(v.Get("cost_samples"))}, "\t"))
	}
	return tw.Flush()
}
