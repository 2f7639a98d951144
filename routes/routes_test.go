package routes

import (
	"slices"
	"testing"
)

func TestMatchAcrossNodes(t *testing.T) {
	tb := New("n1")
	tb.Subscribe("c1", "a/+/c") // local only: never in the node list
	tb.Apply("n2", 5, true, map[string]int{"a/#": 1, "x/y": 2})
	tb.Apply("n3", 7, true, map[string]int{"a/b/c": 1, "#": 1})
	for _, c := range []struct {
		topic string
		want  []string
	}{
		{"a/b/c", []string{"n2", "n3"}},
		{"a", []string{"n2", "n3"}}, // a/# matches its parent
		{"x/y", []string{"n2", "n3"}},
		{"x/z", []string{"n3"}},
		{"$SYS/a", nil}, // no wildcard-first filter matches a $ topic
	} {
		got, _ := tb.Match(c.topic)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("Match(%q) = %v, want %v", c.topic, got, c.want)
		}
	}
}

func TestApplyDeltaFullAndEpochs(t *testing.T) {
	tb := New("n1")
	tb.Apply("n2", 5, true, map[string]int{"a": 1, "b": 1})
	tb.Apply("n2", 5, false, map[string]int{"a": 0, "c": 3})
	if got, _ := tb.Match("a"); len(got) != 0 {
		t.Fatalf("a removed by a delta still matches %v", got)
	}
	if got, _ := tb.Match("c"); !slices.Equal(got, []string{"n2"}) {
		t.Fatalf("c added by a delta: %v", got)
	}
	if tb.Apply("n2", 4, true, map[string]int{"z": 1}) {
		t.Fatal("an older epoch's update was applied")
	}
	tb.Apply("n2", 6, false, map[string]int{"d": 1}) // a new registration replaces all
	if got, _ := tb.Match("b"); len(got) != 0 {
		t.Fatalf("the old epoch's b survived a new epoch: %v", got)
	}
	tb.Apply("n2", 6, true, map[string]int{"e": 1})
	if got, _ := tb.Match("d"); len(got) != 0 {
		t.Fatalf("a full update kept d: %v", got)
	}
	tb.Drop("n2", 5) // older than held: kept
	if tb.PeerFilters("n2") != 1 {
		t.Fatal("Drop of an older epoch removed the newer entries")
	}
	tb.Drop("n2", 6)
	if got, _ := tb.Match("e"); len(got) != 0 || len(tb.Peers()) != 0 {
		t.Fatalf("dropped node still routes: %v %v", got, tb.Peers())
	}
}

func TestSharedGroupsAndLocalCounts(t *testing.T) {
	tb := New("n1")
	v1 := tb.Subscribe("c1", "$share/g/d/+/t")
	if v := tb.Subscribe("c1", "$share/g/d/+/t"); v != v1 {
		t.Fatal("subscribing twice changed the version")
	}
	tb.Subscribe("c2", "$share/g/d/+/t")
	tb.Apply("n2", 1, true, map[string]int{"$share/g/d/+/t": 3, "$share/h/d/#": 1})
	nodes, groups := tb.Match("d/1/t")
	if len(nodes) != 0 {
		t.Fatalf("shared members counted as plain subscribers: %v", nodes)
	}
	got := map[string]map[string]int{}
	for _, g := range groups {
		got[g.Key] = g.Nodes
	}
	if got["$share/g/d/+/t"]["n1"] != 2 || got["$share/g/d/+/t"]["n2"] != 3 || got["$share/h/d/#"]["n2"] != 1 || len(got) != 2 {
		t.Fatalf("groups: %v", got)
	}
	tb.Forget("c1")
	tb.Unsubscribe("c2", "$share/g/d/+/t")
	if l, _ := tb.Local(); len(l) != 0 {
		t.Fatalf("local after the sessions ended: %v", l)
	}
	_, groups = tb.Match("d/1/t")
	for _, g := range groups {
		if _, ok := g.Nodes["n1"]; ok {
			t.Fatalf("this node still a member of %s", g.Key)
		}
	}
}

func TestTrackedChanges(t *testing.T) {
	tb := New("n1")
	c := tb.Track()
	tb.Subscribe("a", "x/1")
	tb.Subscribe("b", "x/1")
	tb.Subscribe("a", "x/2")
	if m, _ := tb.Delta(c); len(m) != 2 || m["x/1"] != 2 || m["x/2"] != 1 {
		t.Fatalf("delta after subscribes: %v", m)
	}
	if m, _ := tb.Delta(c); len(m) != 0 {
		t.Fatalf("a second delta repeated changes: %v", m)
	}
	tb.Forget("a")
	m, ver := tb.Delta(c)
	if len(m) != 2 || m["x/1"] != 1 || m["x/2"] != 0 {
		t.Fatalf("delta after a session ended: %v", m)
	}
	if ver != tb.Version() {
		t.Fatalf("delta at version %d, table at %d", ver, tb.Version())
	}
	tb.Subscribe("c", "x/3")
	if full, _ := tb.Full(c); len(full) != 2 || full["x/3"] != 1 {
		t.Fatalf("full: %v", full)
	}
	if m, _ := tb.Delta(c); len(m) != 0 {
		t.Fatalf("changes taken by Full came again: %v", m)
	}
	tb.Untrack(c)
	tb.Subscribe("d", "x/4")
	if len(c.dirty) != 0 {
		t.Fatal("an untracked Changes still collects")
	}
}
