package router

import (
	"fmt"
	"sync"
	"testing"
)

// TestLanesForgetIdleClients: a lane exists only while someone holds or waits for it, so
// the table does not grow with every client ever sent to.
func TestLanesForgetIdleClients(t *testing.T) {
	var l lanes
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := map[string]int{}
	overlap := ""
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				client := fmt.Sprintf("c%d", (i+j)%4)
				release := l.acquire(client)
				mu.Lock()
				inside[client]++
				if inside[client] > 1 {
					overlap = client
				}
				mu.Unlock()
				mu.Lock()
				inside[client]--
				mu.Unlock()
				release()
			}
		}()
	}
	wg.Wait()
	if overlap != "" {
		t.Fatalf("two holders of %s's lane at once", overlap)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) != 0 {
		t.Fatalf("%d lanes left after every release: %v", len(l.m), l.m)
	}
}
