//go:build !failpoints

package node

import "net/http"

// registerFailpoints adds nothing in production builds.
func (n *Node) registerFailpoints(*http.ServeMux) {}
