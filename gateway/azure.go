package gateway

import (
	"bytes"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"

	"github.com/llmgate/llmgate/api"
	"github.com/llmgate/llmgate/internal/jsoncheck"
	"github.com/llmgate/llmgate/providers"
)

// The Azure OpenAI paths are a front on the /v1 endpoints, so that Azure clients (the SDKs'
// AzureOpenAI classes) work unchanged. Each route runs the handler of its /v1 twin: the front
// only checks the api-version query parameter and, on the deployment-scoped form, names the
// path's deployment as the request's public model. Authentication (api-key or Bearer),
// admission, routing, settling and the usage record are the /v1 path's, endpoint value included.

// azureDeploymentOps are the operations of /openai/deployments/{deployment}/…: those the
// AzureOpenAI clients put under a deployment (less batches, which the gateway does not serve).
var azureDeploymentOps = []providers.Endpoint{
	providers.ChatCompletions, providers.Completions, providers.Embeddings,
	providers.ImageGenerations, providers.ImageEdits,
	providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech,
}

// azureV1Ops are the relayed operations of /openai/v1/…, Azure's form with the model in the
// body: the /v1 endpoints an OpenAI client may call there.
var azureV1Ops = []providers.Endpoint{
	providers.ChatCompletions, providers.Completions, providers.Embeddings, providers.Responses,
	providers.ImageGenerations, providers.ImageEdits,
	providers.AudioTranscriptions, providers.AudioTranslations, providers.AudioSpeech,
}

// azureRoutes registers the Azure paths on e.
func (g *Gateway) azureRoutes(e *gin.Engine) {
	dep := e.Group("/openai/deployments/:deployment", g.requestMeta, azureVersion(true), deploymentModel)
	for _, ep := range azureDeploymentOps {
		dep.POST("/"+string(ep), g.relayHandler(ep))
	}
	// The classic Responses API is not deployment-scoped: the model is in the body.
	classic := e.Group("/openai", g.requestMeta, azureVersion(true))
	classic.POST("/responses", g.relayHandler(providers.Responses))
	g.responsesByID(classic)
	v1 := e.Group("/openai/v1", g.requestMeta, azureVersion(false))
	for _, ep := range azureV1Ops {
		v1.POST("/"+string(ep), g.relayHandler(ep))
	}
	g.responsesByID(v1)
	v1.GET("/models", g.handleModels)
	v1.GET("/models/*model", g.handleModel)
}

// responsesByID registers the Responses API's operations on a stored response under r.
func (g *Gateway) responsesByID(r *gin.RouterGroup) {
	r.GET("/responses/:id", g.responseByID(http.MethodGet, ""))
	r.DELETE("/responses/:id", g.responseByID(http.MethodDelete, ""))
	r.POST("/responses/:id/cancel", g.responseByID(http.MethodPost, "/cancel"))
}

// azureVersion checks the api-version query parameter. Azure requires one on its classic paths,
// where every AzureOpenAI client sends it; on them a missing one is refused, so that a client
// that would fail against Azure fails here too. Any well-formed value is accepted and served
// alike: the gateway does not vary by version, and refusing the versions a list of its own did
// not know (Azure adds and retires them several times a year) would break clients for nothing.
// The v1 form needs none, but a value it is given must still be well formed.
func azureVersion(required bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		v := c.Query("api-version")
		switch {
		case v == "" && !required:
		case v == "":
			writeError(c, errNoAPIVersion)
			c.Abort()
		case !validAPIVersion(v):
			writeError(c, errBadAPIVersion)
			c.Abort()
		}
	}
}

var (
	errNoAPIVersion = newError(http.StatusBadRequest, api.TypeInvalidRequest, "missing_api_version", "api-version",
		"The api-version query parameter is required on /openai/deployments/… and /openai/responses (for example ?api-version=2024-10-21); the /openai/v1/ paths need none.")
	errBadAPIVersion = newError(http.StatusBadRequest, api.TypeInvalidRequest, "invalid_api_version", "api-version",
		"The api-version query parameter must be a date, YYYY-MM-DD or YYYY-MM-DD-preview (for example 2024-10-21), or preview or latest.")
)

// validAPIVersion: YYYY-MM-DD with an optional -preview, the form of every Azure OpenAI data-plane
// version, or preview or latest, which the v1 form and the Python client use.
func validAPIVersion(v string) bool {
	if v == "preview" || v == "latest" {
		return true
	}
	if len(v) == len("2006-01-02-preview") && v[10:] == "-preview" {
		v = v[:10]
	}
	if len(v) != len("2006-01-02") || v[4] != '-' || v[7] != '-' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if i != 4 && i != 7 && (v[i] < '0' || v[i] > '9') {
			return false
		}
	}
	return true
}

// deploymentModel names the path's deployment as the request's public model (reqMeta.pathModel).
func deploymentModel(c *gin.Context) {
	metaOf(c).pathModel = c.Param("deployment")
}

// withModel names model in a JSON body, replacing the body's own model: on an Azure deployment
// path the deployment is the model, whatever the body says. A body that already names it is
// returned as it is; so is one that is not a valid JSON object, or is nested deeper than any
// request needs, for parseRequest to refuse. The check is jsoncheck's, whose stack does not grow
// with the nesting: this runs before parseRequest's depth check.
func withModel(body []byte, model string) []byte {
	if m := gjson.GetBytes(body, "model"); m.Type == gjson.String && m.Str == model {
		return body
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' || !jsoncheck.Valid(body) {
		return body
	}
	out, err := sjson.SetBytes(body, "model", model)
	if err != nil {
		return body
	}
	return out
}
