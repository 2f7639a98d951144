package bench

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Where pub/sub clients connect is tested here without brokers: two bare brokers are not
// a cluster, so a run across them would deliver nothing and prove nothing.

func TestPubSubBrokers(t *testing.T) {
	nodes := []string{"n1:1883", "n2:1883", "n3:1883"}
	type at struct{ sub, pub string }
	for _, tc := range []struct {
		name string
		set  func(*PubSubConfig)
		want []at // pair i's, for 6 pairs
	}{
		{"one broker", func(c *PubSubConfig) { c.MQTT = nodes[:1] },
			[]at{{"n1:1883", "n1:1883"}, {"n1:1883", "n1:1883"}, {"n1:1883", "n1:1883"},
				{"n1:1883", "n1:1883"}, {"n1:1883", "n1:1883"}, {"n1:1883", "n1:1883"}}},
		{"spread, each pair on one node", func(c *PubSubConfig) { c.MQTT = nodes },
			[]at{{"n1:1883", "n1:1883"}, {"n2:1883", "n2:1883"}, {"n3:1883", "n3:1883"},
				{"n1:1883", "n1:1883"}, {"n2:1883", "n2:1883"}, {"n3:1883", "n3:1883"}}},
		{"cross-node", func(c *PubSubConfig) { c.MQTT, c.CrossNode = nodes, true },
			[]at{{"n1:1883", "n2:1883"}, {"n2:1883", "n3:1883"}, {"n3:1883", "n1:1883"},
				{"n1:1883", "n2:1883"}, {"n2:1883", "n3:1883"}, {"n3:1883", "n1:1883"}}},
		{"cross-node, two nodes", func(c *PubSubConfig) { c.MQTT, c.CrossNode = nodes[:2], true },
			[]at{{"n1:1883", "n2:1883"}, {"n2:1883", "n1:1883"}, {"n1:1883", "n2:1883"},
				{"n2:1883", "n1:1883"}, {"n1:1883", "n2:1883"}, {"n2:1883", "n1:1883"}}},
		{"subscribers on node 1, publishers on node 3", func(c *PubSubConfig) {
			c.MQTT, c.SubMQTT, c.PubMQTT = nil, nodes[:1], nodes[2:]
		}, []at{{"n1:1883", "n3:1883"}, {"n1:1883", "n3:1883"}, {"n1:1883", "n3:1883"},
			{"n1:1883", "n3:1883"}, {"n1:1883", "n3:1883"}, {"n1:1883", "n3:1883"}}},
		{"publishers' list overrides --mqtt", func(c *PubSubConfig) { c.MQTT, c.PubMQTT = nodes[:2], nodes[2:] },
			[]at{{"n1:1883", "n3:1883"}, {"n2:1883", "n3:1883"}, {"n1:1883", "n3:1883"},
				{"n2:1883", "n3:1883"}, {"n1:1883", "n3:1883"}, {"n2:1883", "n3:1883"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultPubSubConfig()
			cfg.Pairs = 6
			tc.set(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []at
			for i := range cfg.Pairs {
				sub, pub := cfg.brokers(i)
				got = append(got, at{sub, pub})
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pairs' brokers %v, want %v", got, tc.want)
			}
		})
	}
}

// TestPubSubCrossNodeNeverShares: with the same N ≥ 2 distinct brokers for both sides,
// no pair's publisher is on its subscriber's broker, whatever the number of pairs, and
// the subscribers are spread evenly.
func TestPubSubCrossNodeNeverShares(t *testing.T) {
	for n := 2; n <= 5; n++ {
		var nodes []string
		for k := range n {
			nodes = append(nodes, string(rune('a'+k))+":1883")
		}
		for pairs := 1; pairs <= 3*n+1; pairs++ {
			cfg := DefaultPubSubConfig()
			cfg.MQTT, cfg.CrossNode, cfg.Pairs = nodes, true, pairs
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%d nodes, %d pairs: %v", n, pairs, err)
			}
			subs := map[string]int{}
			for i := range pairs {
				sub, pub := cfg.brokers(i)
				if sub == pub {
					t.Fatalf("%d nodes, pair %d of %d: both on %s", n, i, pairs, sub)
				}
				subs[sub]++
			}
			lo, hi := pairs, 0
			for _, k := range nodes {
				lo, hi = min(lo, subs[k]), max(hi, subs[k])
			}
			if hi-lo > 1 {
				t.Fatalf("%d nodes, %d pairs: subscribers %v", n, pairs, subs)
			}
			if pl := cfg.placement(); pl.CrossBroker != pairs || pl.Pairs != pairs {
				t.Fatalf("%d nodes, %d pairs: placement %+v", n, pairs, pl)
			}
		}
	}
}

func TestPubSubPlacement(t *testing.T) {
	cfg := DefaultPubSubConfig()
	cfg.MQTT, cfg.CrossNode, cfg.Pairs = []string{"a:1", "b:1", "c:1"}, true, 8
	want := &Placement{Pairs: 8, CrossBroker: 8, Routes: []PlacementRoute{
		{Sub: "a:1", Pub: "b:1", Pairs: 3}, {Sub: "b:1", Pub: "c:1", Pairs: 3}, {Sub: "c:1", Pub: "a:1", Pairs: 2},
	}}
	if got := cfg.placement(); !reflect.DeepEqual(got, want) {
		t.Fatalf("cross-node placement %+v, want %+v", got, want)
	}
	cfg.CrossNode = false
	want = &Placement{Pairs: 8, CrossBroker: 0, Routes: []PlacementRoute{
		{Sub: "a:1", Pub: "a:1", Pairs: 3}, {Sub: "b:1", Pub: "b:1", Pairs: 3}, {Sub: "c:1", Pub: "c:1", Pairs: 2},
	}}
	if got := cfg.placement(); !reflect.DeepEqual(got, want) {
		t.Fatalf("spread placement %+v, want %+v", got, want)
	}
	var b strings.Builder
	(&Result{Kind: "pubsub", Completeness: &Completeness{}, Placement: cfg.placement()}).WriteText(&b)
	for _, w := range []string{"8 pair(s), 0 with publisher and subscriber on different brokers",
		"subscriber on c:1, publisher on c:1: 2 pair(s)"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("text %q does not contain %q", b.String(), w)
		}
	}
}

func TestPubSubConfigValidate(t *testing.T) {
	for _, c := range []struct {
		change func(*PubSubConfig)
		want   []string
	}{
		{func(c *PubSubConfig) { c.MQTT = nil }, []string{"MQTT", "SubMQTT"}},
		{func(c *PubSubConfig) { c.MQTT, c.SubMQTT = nil, []string{"a:1"} }, []string{"MQTT", "PubMQTT"}},
		{func(c *PubSubConfig) { c.MQTT = []string{"a:1", ""} }, []string{"MQTT", `"a:1,"`, "empty"}},
		{func(c *PubSubConfig) { c.SubMQTT = []string{""} }, []string{"SubMQTT", "empty"}},
		{func(c *PubSubConfig) { c.PubMQTT = []string{"", "b:1"} }, []string{"PubMQTT", "empty"}},
		{func(c *PubSubConfig) { c.CrossNode = true }, []string{"CrossNode", "pair 0", "127.0.0.1:1883"}},
		{func(c *PubSubConfig) { c.MQTT, c.CrossNode = []string{"a:1", "a:1"}, true }, []string{"CrossNode", "a:1"}},
		// a:1 twice in three: pair 2's subscriber (a) and publisher (a, the first) collide.
		{func(c *PubSubConfig) { c.MQTT, c.CrossNode = []string{"a:1", "b:1", "a:1"}, true }, []string{"CrossNode", "pair 2"}},
		// Lists of different lengths: pair 2 has subscriber a:1 and publisher a:1.
		{func(c *PubSubConfig) {
			c.MQTT, c.SubMQTT, c.PubMQTT, c.CrossNode = nil, []string{"a:1", "b:1"}, []string{"a:1", "b:1", "c:1"}, true
		}, []string{"CrossNode", "pair 2", "a:1"}},
		{func(c *PubSubConfig) { c.Pairs = 0 }, []string{"Pairs"}},
		{func(c *PubSubConfig) { c.QoS = 2 }, []string{"QoS"}},
	} {
		cfg := DefaultPubSubConfig()
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%+v: accepted", cfg)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not name %s", cfg, err, w)
			}
		}
	}
	// One pair across two lists that do not collide for it is fine.
	cfg := DefaultPubSubConfig()
	cfg.MQTT, cfg.SubMQTT, cfg.PubMQTT, cfg.CrossNode, cfg.Pairs = nil, []string{"a:1", "b:1"}, []string{"a:1", "b:1", "c:1"}, true, 2
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
