package inbox

import (
	"strings"
	"testing"
)

func TestValidateClientID(t *testing.T) {
	for _, ok := range []string{"device-1", "user@example.com", "Ω-7", strings.Repeat("a", 128)} {
		if err := ValidateClientID(ok); err != nil {
			t.Errorf("ValidateClientID(%q) = %v, want nil", ok, err)
		}
	}
	for id, want := range map[string]string{
		"":                       "empty",
		strings.Repeat("a", 129): "129 bytes",
		"a/b":                    `'/'`,
		"a+":                     `"+"`,
		"#":                      `"#"`,
		"a\x00b":                 "control",
		"\xff":                   "UTF-8",
	} {
		err := ValidateClientID(id)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateClientID(%q) = %v, want error containing %s", id, err, want)
		}
	}
}

func TestValidateTopic(t *testing.T) {
	for _, ok := range []string{"inbox/a", "a", "a/b/c", "/leading"} {
		if err := ValidateTopic(ok); err != nil {
			t.Errorf("ValidateTopic(%q) = %v", ok, err)
		}
	}
	for topic, want := range map[string]string{
		"":                        "empty",
		"a/+":                     "wildcard",
		"a/#":                     "wildcard",
		"$SYS/x":                  "reserved",
		strings.Repeat("t", 1025): "1025 bytes",
		"a\x00":                   "NUL",
	} {
		err := ValidateTopic(topic)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateTopic(%q) = %v, want error containing %s", topic, err, want)
		}
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"inbox/a", "inbox/a", true},
		{"inbox/+", "inbox/a", true},
		{"inbox/#", "inbox/a", true},
		{"#", "inbox/a", true},
		{"inbox/b", "inbox/a", false},
		{"inbox", "inbox/a", false},
		{"inbox/a/b", "inbox/a", false},
		{"$share/g/inbox/+", "inbox/a", true},
	} {
		if got := Matches(c.filter, c.topic); got != c.want {
			t.Errorf("Matches(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}
