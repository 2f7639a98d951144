package coord

import "context"

// LookChanged is the changed channel of an Entry.Look over a backend's two one-off watches
// (the entry's and the mark's): closed once a or b fires or closes, or also does (a nil also
// never does), or ctx ends. Its goroutine ends with ctx, which the registration ends once it
// has looked.
func LookChanged[A, B any](ctx context.Context, a <-chan A, b <-chan B, also <-chan struct{}) <-chan struct{} {
	changed := make(chan struct{})
	go func() {
		defer close(changed)
		select {
		case <-a:
		case <-b:
		case <-also:
		case <-ctx.Done():
		}
	}()
	return changed
}
