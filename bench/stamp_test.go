package bench

import (
	"testing"
)

func TestStampRoundTrip(t *testing.T) {
	p := newPayload(64)
	for _, s := range []Stamp{{}, {SentNS: 1<<62 + 12345, Stream: 0xffffffff, Seq: 7}, {SentNS: 999, Stream: 3, Seq: 1 << 31}} {
		writeStamp(p, s)
		got, err := ParseStamp(p)
		if err != nil || got != s {
			t.Fatalf("ParseStamp(writeStamp(%+v)) = %+v, %v", s, got, err)
		}
	}
	if len(p) != 64 || p[63] != '.' {
		t.Fatalf("payload %q", p)
	}
	if len(newPayload(5)) != stampLen {
		t.Fatal("a payload is never shorter than its stamp")
	}
}

func TestParseStampRejects(t *testing.T) {
	for _, p := range []string{"", "short", "0000000000000000000000000000000g", "00000000000000000000000000000000"[:31]} {
		if _, err := ParseStamp([]byte(p)); err == nil {
			t.Errorf("ParseStamp(%q) succeeded", p)
		}
	}
}
