package gateway

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/llmgate/llmgate/api"
)

// modelObject is OpenAI's model object.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// handleModels lists the public models the caller's key may use.
func (g *Gateway) handleModels(c *gin.Context) {
	x, ok := g.authenticate(c, "models")
	if !ok {
		return
	}
	var out outcome
	defer x.settle(&out)
	data := []modelObject{}
	for _, m := range g.router.Load().Models() {
		if x.id.Allows(m) {
			data = append(data, modelObject{ID: m, Object: "model", OwnedBy: "llmgate"})
		}
	}
	out.status = http.StatusOK
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

// handleModel describes one model, or 404s when it does not exist or the key may not use it
// (the two are indistinguishable on purpose, as OpenAI does).
func (g *Gateway) handleModel(c *gin.Context) {
	x, ok := g.authenticate(c, "models")
	if !ok {
		return
	}
	var out outcome
	defer x.settle(&out)
	m := strings.TrimPrefix(c.Param("model"), "/") // model names may contain '/'
	if !g.router.Load().Has(m) || !x.id.Allows(m) {
		out = x.failed(newError(http.StatusNotFound, api.TypeInvalidRequest, "model_not_found", "model", "The model `"+m+"` does not exist or you do not have access to it."))
		return
	}
	x.label = m
	out.status = http.StatusOK
	c.JSON(http.StatusOK, modelObject{ID: m, Object: "model", OwnedBy: "llmgate"})
}
