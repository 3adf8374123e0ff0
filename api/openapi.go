package api

import _ "embed" // for OpenAPI

// OpenAPI is the OpenAPI 3.1 description of the public and admin APIs (api/openapi.yaml),
// embedded so the admin listener can serve the document that matches the running binary. A test
// in cmd/llmgate keeps its paths equal to the routes both listeners register. Treat it as
// read-only.
//
//go:embed openapi.yaml
var OpenAPI []byte
