package node

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestDelayedWillsOrder: held Wills come out in order of their due time, only once due; a
// second Will of the same client id replaces the first, and a cancelled one never comes.
func TestDelayedWillsOrder(t *testing.T) {
	d := newDelayedWills()
	now := time.Now()
	hold := func(id string, in time.Duration) {
		d.add(&delayedWill{cl: &mqtt.Client{ID: id}, will: mqtt.Will{TopicName: id}, due: now.Add(in)})
	}
	hold("c", 3*time.Second)
	hold("a", time.Second)
	hold("b", 2*time.Second)
	hold("gone", 1500*time.Millisecond)
	hold("a", 4*time.Second) // replaces a's first
	if !d.cancel("gone") || d.cancel("gone") {
		t.Fatal("cancel reports a Will held only the first time")
	}
	if next, ok := d.next(); !ok || !next.Equal(now.Add(2*time.Second)) {
		t.Fatalf("next due %v %v, want b's", next, ok)
	}
	if due := d.takeDue(now.Add(time.Second)); len(due) != 0 {
		t.Fatalf("%d Wills due after 1s, want none (a's was replaced)", len(due))
	}
	var got []string
	for _, w := range d.takeDue(now.Add(10 * time.Second)) {
		got = append(got, w.cl.ID)
	}
	if len(got) != 3 || got[0] != "b" || got[1] != "c" || got[2] != "a" {
		t.Fatalf("due in order %v, want [b c a]", got)
	}
	if _, ok := d.next(); ok || d.len() != 0 {
		t.Fatalf("%d Wills still held, want none", d.len())
	}
}
