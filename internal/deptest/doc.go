// Package deptest holds only a test: the layering of Switchboard's packages, written down
// as which packages each one must not link, and checked against `go list -deps`. A role
// binary that starts linking what it must not (the monitor the broker, a router a
// backend's client library) fails the build here rather than growing unnoticed.
package deptest
