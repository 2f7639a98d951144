package cli

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestBenchPubSubBrokerFlags: --mqtt, --sub-mqtt, --pub-mqtt and --cross-node become the
// configuration's lists, and a placement that would put a pair's publisher and subscriber
// on one broker under --cross-node is a usage error naming the flag.
func TestBenchPubSubBrokerFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	e := env{stdout: &out, stderr: &errOut}
	nodes := "127.0.0.1:1883, 127.0.0.1:1884,127.0.0.1:1885"
	three := []string{"127.0.0.1:1883", "127.0.0.1:1884", "127.0.0.1:1885"}

	cfg, _, err := pubSubConfig(e, nil)
	if err != nil || !slices.Equal(cfg.MQTT, []string{"127.0.0.1:1883"}) || cfg.SubMQTT != nil || cfg.PubMQTT != nil || cfg.CrossNode {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	cfg, _, err = pubSubConfig(e, []string{"--mqtt", nodes, "--cross-node"})
	if err != nil || !slices.Equal(cfg.MQTT, three) || !cfg.CrossNode {
		t.Fatalf("--cross-node: %+v, %v", cfg, err)
	}
	cfg, _, err = pubSubConfig(e, []string{"--sub-mqtt", "127.0.0.1:1883", "--pub-mqtt", "127.0.0.1:1885"})
	if err != nil || cfg.MQTT != nil || !slices.Equal(cfg.SubMQTT, three[:1]) || !slices.Equal(cfg.PubMQTT, three[2:]) {
		t.Fatalf("--sub-mqtt and --pub-mqtt: %+v, %v", cfg, err)
	}
	// --mqtt given stays, even when both sides have their own lists.
	cfg, _, err = pubSubConfig(e, []string{"--mqtt", nodes, "--sub-mqtt", "127.0.0.1:1883", "--pub-mqtt", "127.0.0.1:1885"})
	if err != nil || !slices.Equal(cfg.MQTT, three) {
		t.Fatalf("--mqtt with both lists: %+v, %v", cfg, err)
	}
	cfg, _, err = pubSubConfig(e, []string{"--mqtt", nodes, "--pub-mqtt", "127.0.0.1:1885"})
	if err != nil || !slices.Equal(cfg.MQTT, three) || cfg.SubMQTT != nil || !slices.Equal(cfg.PubMQTT, three[2:]) {
		t.Fatalf("--pub-mqtt alone: %+v, %v", cfg, err)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--cross-node"}, []string{"--cross-node", "127.0.0.1:1883"}},
		{[]string{"--cross-node", "--mqtt", "127.0.0.1:1883,127.0.0.1:1883"}, []string{"--cross-node", "pair 0"}},
		{[]string{"--mqtt", " , "}, []string{"--mqtt", "required"}},
		{[]string{"--cross-node", "--sub-mqtt", "127.0.0.1:1883", "--pub-mqtt", "127.0.0.1:1883"}, []string{"--cross-node"}},
	} {
		_, _, err := pubSubConfig(e, tc.args)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%q: error %v, want a usage error", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not name %s", tc.args, err, w)
			}
		}
	}
}
