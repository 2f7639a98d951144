package auth

import (
	"strings"
	"testing"

	"github.com/switchboard-mqtt/switchboard/inbox"
)

// matchTopic is the reference MQTT matcher the fuzz test checks covers against:
// inbox.Matches plus [MQTT-4.7.2-1] (a wildcard in the first level does not match a topic
// starting with '$').
func matchTopic(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	return inbox.Matches(filter, topic)
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		rule, filter string
		want         bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a", false},
		{"a/b", "a/b/c", false},
		{"a/b", "a/+", false},
		{"a/b", "a/#", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false}, // a/# also matches a and a/b/c
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"a/+", "a/", true}, // '+' matches an empty level
		{"a/#", "a", true},  // '#' matches the parent
		{"a/#", "a/#", true},
		{"a/#", "a/+/c/#", true},
		{"a/#", "+/b", false},
		{"a/#", "#", false},
		{"a/+/#", "a/#", false}, // a/# matches a, a/+/# does not
		{"a/+/#", "a/+", true},
		{"a/+/#", "a/b", true},
		{"a/+/#", "a", false},
		{"#", "#", true},
		{"#", "+/+/+", true},
		{"#", "a", true},
		{"+", "+", true},
		{"+", "#", false},
		{"+/+", "+/#", false},
		{"+/#", "#", false}, // conservative: both match every non-$ topic, but a filter '#' needs a rule '#'
		{"", "", true},
		// $ topics: wildcards in the first level never reach them
		{"#", "$SYS/x", false},
		{"#", "$SYS/#", false},
		{"+/x", "$SYS/x", false},
		{"+/#", "$SYS", false},
		{"$SYS/#", "$SYS/x", true},
		{"$SYS/#", "$SYS/#", true},
		{"$SYS/#", "$SYS", true},
		{"$SYS/+", "$SYS/x", true},
		{"$SYS/x", "$SYS/x", true},
		{"$SYS/#", "$OTHER/x", false},
		{"a/#", "a/$x", true}, // only the first level is special
		{"#", "+", true},      // a filter '+' does not match $ topics either
	} {
		rule, filter := strings.Split(tc.rule, "/"), strings.Split(tc.filter, "/")
		if got := covers(rule, filter); got != tc.want {
			t.Errorf("covers(rule %q, filter %q) = %v, want %v", tc.rule, tc.filter, got, tc.want)
		}
	}
}

func TestCheckFilter(t *testing.T) {
	for _, f := range []string{"a", "a/b", "+", "#", "a/+/b", "a/#", "/", "a//b", "$SYS/#", "+/+/#"} {
		if err := checkFilter(f); err != nil {
			t.Errorf("checkFilter(%q) = %v", f, err)
		}
	}
	for _, f := range []string{"", "a#", "a/#/b", "#/a", "a+", "a/b+/c", "+a", "a\x00", "\xff", strings.Repeat("a", maxTopicLen+1)} {
		if err := checkFilter(f); err == nil {
			t.Errorf("checkFilter(%.20q) = nil", f)
		}
	}
	for _, topic := range []string{"a/+", "#", "a/#"} {
		if checkTopic(topic) == nil {
			t.Errorf("checkTopic(%q) = nil", topic)
		}
	}
}

func TestStripShare(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		ok      bool
	}{
		{"a/b", "a/b", true},
		{"$share/g/a/b", "a/b", true},
		{"$share/g/#", "#", true},
		{"$share/g/$share/h/x", "$share/h/x", true}, // stripped once; a rule cannot name $share
		{"$share/g", "", false},
		{"$share/g/", "", false},
		{"$share//a", "", false},
		{"$share/+/a", "", false},
		{"$share/#/a", "", false},
		{"$share", "", false},
		{"$sharex/a", "$sharex/a", true},
	} {
		out, ok := stripShare(tc.in)
		if ok != tc.ok || (ok && out != tc.out) {
			t.Errorf("stripShare(%q) = %q, %v; want %q, %v", tc.in, out, ok, tc.out, tc.ok)
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		in, user, client, out string
		ok                    bool
	}{
		{"inbox/%c", "u", "c1", "inbox/c1", true},
		{"status/%u/%c", "alice", "ph", "status/alice/ph", true},
		{"x-%c-y", "", "c", "x-c-y", true},
		{"100%%", "", "", "100%", true},
		{"%%c", "", "", "%c", true},
		{"%%%c", "", "z", "%z", true},
		{"%u", "", "c", "", false}, // no verified username
		{"%c", "u", "", "", false},
		{"%c", "u", "a/b", "", false},
		{"%c", "u", "+", "", false},
		{"%c", "u", "#", "", false},
		{"%c", "u", "a\x00", "", false},
		{"%u", "a/b", "c", "", false},
		{"plain", "a/#", "+", "plain", true}, // unused bad values do not matter
	} {
		out, ok := expand(tc.in, tc.user, tc.client)
		if ok != tc.ok || out != tc.out {
			t.Errorf("expand(%q, %q, %q) = %q, %v; want %q, %v", tc.in, tc.user, tc.client, out, ok, tc.out, tc.ok)
		}
	}
}

func TestNewRule(t *testing.T) {
	for _, topic := range []string{"a/%c/#", "%u", "100%%/x", "$SYS/#", "#", "x%c%u"} {
		if _, err := newRule(topic); err != nil {
			t.Errorf("newRule(%q) = %v", topic, err)
		}
	}
	for _, topic := range []string{"", "a/%x", "a/%", "$share/g/a", "$share", "a/#/b", "a+", "%c+"} {
		if _, err := newRule(topic); err == nil {
			t.Errorf("newRule(%q) = nil error", topic)
		}
	}
}

func TestClientPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, user, client string
		want                  bool
	}{
		{"%u", "alice", "alice", true},
		{"%u", "alice", "alice2", false},
		{"%u-*", "alice", "alice-1", true},
		{"%u-*", "alice", "alice-", true},
		{"%u-*", "alice", "bob-1", false},
		{"*", "alice", "anything", true},
		{"dev-*", "alice", "dev", false},
		{"100%%", "alice", "100%", true},
		{"%%u", "alice", "%u", true},
		{"%%u", "alice", "alice", false},
	} {
		p, err := compileClientPattern(tc.pattern)
		if err != nil {
			t.Fatalf("compileClientPattern(%q): %v", tc.pattern, err)
		}
		if got := p.matches(tc.user, tc.client); got != tc.want {
			t.Errorf("pattern %q user %q: matches(%q) = %v, want %v", tc.pattern, tc.user, tc.client, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a*b", "**", "*a", "%c", "%", "a\nb"} {
		if _, err := compileClientPattern(bad); err == nil {
			t.Errorf("compileClientPattern(%q) = nil error", bad)
		}
	}
}
