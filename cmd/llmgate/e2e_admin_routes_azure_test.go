package main

import (
	"strings"
	"testing"
)

// The rows of TestEveryAdminRouteOnBothStores for the Azure OpenAI paths: each calls its path
// once, as an Azure client would, and checks the answer of the /v1 twin that serves it.

// azureVersion is the api-version the rows send on the classic paths.
const azureVersion = "?api-version=2024-10-21"

// azurePost is a row that posts body to path and wants a 200 whose answer has check.
func azurePost(path, body, check string) func(*routeRun, *testing.T) {
	return func(s *routeRun, t *testing.T) {
		if r := s.public(t, s.key).Must(200, "POST", path, body); !r.JSON(check).Exists() {
			t.Errorf("POST %s: no %s in %.500s", path, check, r.Body)
		}
	}
}

// azureForm is a row that posts a multipart form with a file part to path and wants a 200 whose
// answer is not empty.
func azureForm(path, fileField string, fields ...string) func(*routeRun, *testing.T) {
	return func(s *routeRun, t *testing.T) {
		if r := s.postForm(t, path, fileField, make([]byte, 16000), fields...); strings.TrimSpace(r.Body) == "" {
			t.Errorf("POST %s: empty answer", path)
		}
	}
}

// azureResponse returns the rows' calls of the Responses API under prefix (/openai or
// /openai/v1) with query (the api-version, if any): create, retrieve, cancel, delete.
func azureResponse(prefix, query string) (create, get, cancel, del func(*routeRun, *testing.T)) {
	create = func(s *routeRun, t *testing.T) {
		r := s.public(t, s.key).Must(200, "POST", prefix+"/responses"+query, `{"model":"gpt-test","input":"route check"}`)
		if s.azureResponseID = r.JSON("id").String(); !strings.HasPrefix(s.azureResponseID, "resp_") {
			t.Errorf("response: %.500s", r.Body)
		}
	}
	get = func(s *routeRun, t *testing.T) {
		if r := s.public(t, s.key).Must(200, "GET", prefix+"/responses/"+s.azureResponseID+query, nil); r.JSON("id").String() != s.azureResponseID {
			t.Errorf("GET response: %.500s", r.Body)
		}
	}
	cancel = func(s *routeRun, t *testing.T) {
		if r := s.public(t, s.key).Must(400, "POST", prefix+"/responses/"+s.azureResponseID+"/cancel"+query, nil); !strings.Contains(r.Body, "background") {
			t.Errorf("cancel: %s", r.Body)
		}
	}
	del = func(s *routeRun, t *testing.T) {
		if r := s.public(t, s.key).Must(200, "DELETE", prefix+"/responses/"+s.azureResponseID+query, nil); !r.JSON("deleted").Bool() {
			t.Errorf("DELETE response: %s", r.Body)
		}
	}
	return
}

// azureRouteSteps are the rows, in the order they run.
func azureRouteSteps() []routeStep {
	const dep = "/openai/deployments/gpt-test/"
	chat := `{"messages":[{"role":"user","content":"hi"}]}`
	classicCreate, classicGet, classicCancel, classicDelete := azureResponse("/openai", azureVersion)
	v1Create, v1Get, v1Cancel, v1Delete := azureResponse("/openai/v1", "")
	return []routeStep{
		{publicRoute("POST /openai/deployments/:deployment/chat/completions"), azurePost(dep+"chat/completions"+azureVersion, chat, "choices.0.message.content")},
		{publicRoute("POST /openai/deployments/:deployment/completions"), azurePost(dep+"completions"+azureVersion, `{"prompt":"say","max_tokens":5}`, "choices.0.text")},
		{publicRoute("POST /openai/deployments/:deployment/embeddings"), azurePost(dep+"embeddings"+azureVersion, `{"input":"a"}`, "data.0.embedding")},
		{publicRoute("POST /openai/deployments/:deployment/images/generations"), azurePost(dep+"images/generations"+azureVersion, `{"prompt":"a cat"}`, "data.0")},
		{publicRoute("POST /openai/deployments/:deployment/images/edits"), azureForm(dep+"images/edits"+azureVersion, "image", "prompt", "a hat")},
		{publicRoute("POST /openai/deployments/:deployment/audio/transcriptions"), azureForm(dep+"audio/transcriptions"+azureVersion, "file")},
		{publicRoute("POST /openai/deployments/:deployment/audio/translations"), azureForm(dep+"audio/translations"+azureVersion, "file")},
		{publicRoute("POST /openai/deployments/:deployment/audio/speech"), func(s *routeRun, t *testing.T) {
			if r := s.public(t, s.key).Must(200, "POST", dep+"audio/speech"+azureVersion, `{"input":"hello","voice":"alloy"}`); r.Header.Get("Content-Type") != "audio/mpeg" || r.Body == "" {
				t.Errorf("speech: %s, %d bytes", r.Header.Get("Content-Type"), len(r.Body))
			}
		}},
		{publicRoute("POST /openai/responses"), classicCreate},
		{publicRoute("GET /openai/responses/:id"), classicGet},
		{publicRoute("POST /openai/responses/:id/cancel"), classicCancel},
		{publicRoute("DELETE /openai/responses/:id"), classicDelete},
		{publicRoute("POST /openai/v1/chat/completions"), azurePost("/openai/v1/chat/completions", `{"model":"gpt-test","messages":[{"role":"user","content":"hi"}]}`, "choices.0.message.content")},
		{publicRoute("POST /openai/v1/completions"), azurePost("/openai/v1/completions", `{"model":"gpt-test","prompt":"say","max_tokens":5}`, "choices.0.text")},
		{publicRoute("POST /openai/v1/embeddings"), azurePost("/openai/v1/embeddings", `{"model":"gpt-test","input":"a"}`, "data.0.embedding")},
		{publicRoute("POST /openai/v1/images/generations"), azurePost("/openai/v1/images/generations", `{"model":"gpt-test","prompt":"a cat"}`, "data.0")},
		{publicRoute("POST /openai/v1/images/edits"), azureForm("/openai/v1/images/edits", "image", "model", "gpt-test", "prompt", "a hat")},
		{publicRoute("POST /openai/v1/audio/transcriptions"), azureForm("/openai/v1/audio/transcriptions", "file", "model", "gpt-test")},
		{publicRoute("POST /openai/v1/audio/translations"), azureForm("/openai/v1/audio/translations", "file", "model", "gpt-test")},
		{publicRoute("POST /openai/v1/audio/speech"), func(s *routeRun, t *testing.T) {
			if r := s.public(t, s.key).Must(200, "POST", "/openai/v1/audio/speech", `{"model":"gpt-test","input":"hello","voice":"alloy"}`); r.Body == "" {
				t.Errorf("speech: empty answer")
			}
		}},
		{publicRoute("POST /openai/v1/responses"), v1Create},
		{publicRoute("GET /openai/v1/responses/:id"), v1Get},
		{publicRoute("POST /openai/v1/responses/:id/cancel"), v1Cancel},
		{publicRoute("DELETE /openai/v1/responses/:id"), v1Delete},
		{publicRoute("GET /openai/v1/models"), func(s *routeRun, t *testing.T) {
			if r := s.public(t, s.key).Must(200, "GET", "/openai/v1/models", nil); !r.JSON(`data.#(id=="gpt-test")`).Exists() {
				t.Errorf("models: %s", r.Body)
			}
		}},
		{publicRoute("GET /openai/v1/models/*model"), func(s *routeRun, t *testing.T) {
			if r := s.public(t, s.key).Must(200, "GET", "/openai/v1/models/gpt-test", nil); r.JSON("id").String() != "gpt-test" {
				t.Errorf("model: %s", r.Body)
			}
		}},
	}
}
