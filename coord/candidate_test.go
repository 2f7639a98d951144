package coord_test

import (
	"testing"

	"github.com/switchboard-mqtt/switchboard/coord"
)

func TestCandidateRoundTrip(t *testing.T) {
	for _, c := range []coord.Candidate{
		{ID: "mon-1"},
		{ID: "mon-1", AdminAddr: "10.0.0.7:9884"},
		{ID: `odd"{name`, AdminAddr: "[::1]:9884"},
	} {
		if got := coord.ParseCandidate(c.String()); got != c {
			t.Errorf("ParseCandidate(%q) = %+v, want %+v", c.String(), got, c)
		}
	}
	// A bare name is the whole candidate, even one that looks a little like JSON.
	for _, s := range []string{"reaper-a", "{not json", `{"admin_addr":"x"}`} {
		if got := coord.ParseCandidate(s); got != (coord.Candidate{ID: s}) {
			t.Errorf("ParseCandidate(%q) = %+v, want the bare name", s, got)
		}
	}
	if s := (coord.Candidate{ID: "mon-1"}).String(); s != "mon-1" {
		t.Errorf("a candidate without an address encodes as %q, want the bare id", s)
	}
}
