package router

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 description of every endpoint the router serves, the dashboard's
// included, served at GET /v1/openapi.json. TestOpenAPIMatchesRoutes checks it against the
// routes, both ways, and validates it.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document of the router's HTTP API.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openAPI)
}
