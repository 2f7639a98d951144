package coord

import (
	"encoding/json"
	"strings"
)

// Candidate is what an election candidate publishes about itself in the data Campaign
// stores: its name and the address of its admin endpoint if any, where others find the
// leader's (a router's dashboard reads the leading monitor's probe results there).
type Candidate struct {
	ID        string `json:"id"`
	AdminAddr string `json:"admin_addr,omitempty"`
}

// String encodes c as the candidate data for Campaign: the bare ID when there is no admin
// address (what every candidate published before addresses were added), JSON otherwise.
func (c Candidate) String() string {
	if c.AdminAddr == "" {
		return c.ID
	}
	b, _ := json.Marshal(c) // two strings: cannot fail
	return string(b)
}

// ParseCandidate reads what Leader returns: the JSON Candidate.String writes, or a bare name.
func ParseCandidate(s string) Candidate {
	if strings.HasPrefix(s, "{") {
		var c Candidate
		if err := json.Unmarshal([]byte(s), &c); err == nil && c.ID != "" {
			return c
		}
	}
	return Candidate{ID: s}
}
