package coord

import "context"

// LookChanged is the changed channel of an Entry.Look over a backend's two one-off watches
// (the entry's and the mark's): closed once a, b or also (if not nil) fires or closes, or ctx
// ends; the registration ends ctx once it has looked, and the goroutine with it.
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
