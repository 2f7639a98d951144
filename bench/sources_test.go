package bench

import (
	"strings"
	"testing"
)

func TestParseSourceIPs(t *testing.T) {
	got, err := ParseSourceIPs("127.0.0.2-127.0.0.4, 127.0.1.1")
	if err != nil || strings.Join(got, ",") != "127.0.0.2,127.0.0.3,127.0.0.4,127.0.1.1" {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"x", "127.0.0.5-127.0.0.4", "::1", "127.0.0.0-127.1.0.0"} {
		if _, err := ParseSourceIPs(bad); err == nil {
			t.Errorf("ParseSourceIPs(%q) succeeded", bad)
		}
	}
	if got, _ := ParseSourceIPs(""); len(got) != 0 {
		t.Fatal("empty list")
	}
}
