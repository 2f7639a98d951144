package router

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenAPIMatchesRoutes: the OpenAPI document is a valid OpenAPI 3 document, and it
// describes exactly the endpoints the router serves, the dashboard's included: a route
// added without its description, or a description left after its route went, fails here.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid: %v", err)
	}

	r := &Router{registry: prometheus.NewRegistry()}
	d := &Dashboard{r: r}
	var served []string
	for _, rt := range slices.Concat(r.apiRoutes(), d.pageRoutes(), d.dataRoutes()) {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			t.Fatalf("route %q has no method: every endpoint names its method", rt.pattern)
		}
		served = append(served, method+" "+strings.TrimSuffix(path, "{$}"))
	}
	var described []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(described)
	for _, s := range served {
		if !slices.Contains(described, s) {
			t.Errorf("%s is served but not described in router/openapi.json", s)
		}
	}
	for _, s := range described {
		if !slices.Contains(served, s) {
			t.Errorf("%s is described in router/openapi.json but not served", s)
		}
	}

	// Every operation says what it answers without a token; the page's and /healthz's
	// need none (security: []), everything else the bearer token.
	open := []string{"GET /", "GET /healthz", "GET /ui", "GET /ui/{file}"}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			public := op.Security != nil && len(*op.Security) == 0
			if public != slices.Contains(open, key) {
				t.Errorf("%s: public %v, want %v", key, public, !public)
			}
			if !public && op.Responses.Status(http.StatusUnauthorized) == nil {
				t.Errorf("%s: no 401 answer described", key)
			}
		}
	}
}

// TestOpenAPIServed: GET /v1/openapi.json answers the embedded document.
func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	r := &Router{registry: prometheus.NewRegistry()}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !bytes.Equal(rec.Body.Bytes(), openAPI) {
		t.Fatalf("GET /v1/openapi.json: %d %q, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
	}
}
