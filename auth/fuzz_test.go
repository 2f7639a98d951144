package auth

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseFile: parsing never panics, and an accepted file re-encodes to a file that
// decodes to the same value, is accepted too, and encodes to the same bytes.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"users": {"a": {"password": "$2a$04$abcdefghijklmnopqrstuu5Ugd8.3Jm0bNn1N3CG0qg2.NOm2bj/W", "clients": ["a-*"]}}, "acl": [{"topic": "x/%c/#", "access": "readwrite"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := parseRuleSet("fuzz.json", data, testCost)
		if err != nil {
			if rs != nil {
				t.Fatal("a rule set with an error")
			}
			return
		}
		fd, err := decodeFile("fuzz.json", data)
		if err != nil {
			t.Fatalf("accepted, then refused: %v", err)
		}
		out, err := fd.encode()
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		fd2, err := decodeFile("re.json", out)
		if err != nil {
			t.Fatalf("re-encoded file refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(fd, fd2) {
			t.Fatalf("round trip changed the file:\n%#v\n%#v", fd, fd2)
		}
		rs2, err := parseRuleSet("re.json", out, testCost)
		if err != nil {
			t.Fatalf("re-encoded file invalid: %v\n%s", err, out)
		}
		if len(rs2.users) != len(rs.users) || len(rs2.read) != len(rs.read) || len(rs2.write) != len(rs.write) {
			t.Fatal("re-encoded file compiles differently")
		}
		out2, err := fd2.encode()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not stable: %v\n%s\n%s", err, out, out2)
		}
	})
}

// FuzzCovers: a filter that covers says is covered never matches a topic the rule does
// not match (checked with topics built from the filter's wildcards and with random
// topics); on topic names covers is exactly MQTT matching; and substituting a client id
// into a rule never changes the rule's shape.
func FuzzCovers(f *testing.F) {
	f.Add("a/#", "a/+", "c1", uint64(1))
	f.Add("#", "$SYS/x", "$SYS", uint64(2))
	f.Add("inbox/%c", "inbox/+", "a/#", uint64(3))
	f.Fuzz(func(t *testing.T, ruleText, filterText, client string, seed uint64) {
		if checkFilter(ruleText) != nil || checkFilter(filterText) != nil ||
			strings.HasPrefix(ruleText, "$share/") || strings.HasPrefix(filterText, "$share/") {
			return // shares are stripped before covers is asked
		}
		if len(ruleText)+len(filterText) > 512 {
			return // length adds nothing to the level logic and slows every run
		}
		rule, filter := strings.Split(ruleText, "/"), strings.Split(filterText, "/")
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		words := append(append([]string{"", "x", "$x", "$SYS", "a"}, rule...), filter...)
		word := func() string {
			w := words[rng.IntN(len(words))]
			if w == "+" || w == "#" {
				return "w"
			}
			return w
		}

		if !covers(filter, filter) {
			t.Fatalf("filter %q does not cover itself", filterText)
		}
		if covers(rule, filter) {
			// topics the filter matches, built from it
			for range 50 {
				var levels []string
				for i, l := range filter {
					switch l {
					case "+":
						w := word()
						if i == 0 && strings.HasPrefix(w, "$") {
							w = "y" // '+' in the first level does not match $ topics
						}
						levels = append(levels, w)
					case "#":
						n := rng.IntN(4)
						if i == 0 && n == 0 {
							n = 1 // a topic has at least one level
						}
						for j := range n {
							w := word()
							if i == 0 && j == 0 && strings.HasPrefix(w, "$") {
								w = "y"
							}
							levels = append(levels, w)
						}
					default:
						levels = append(levels, l)
					}
				}
				topic := strings.Join(levels, "/")
				if !matchTopic(filterText, topic) {
					t.Fatalf("test bug: topic %q built from filter %q does not match it", topic, filterText)
				}
				if !matchTopic(ruleText, topic) {
					t.Fatalf("covers(rule %q, filter %q), but topic %q matches the filter and not the rule", ruleText, filterText, topic)
				}
			}
			// random topics
			for range 50 {
				n := 1 + rng.IntN(len(filter)+2)
				levels := make([]string, n)
				for i := range levels {
					levels[i] = word()
				}
				topic := strings.Join(levels, "/")
				if matchTopic(filterText, topic) && !matchTopic(ruleText, topic) {
					t.Fatalf("covers(rule %q, filter %q), but topic %q matches the filter and not the rule", ruleText, filterText, topic)
				}
			}
		}
		// on a topic name, covers is MQTT matching
		if checkTopic(filterText) == nil {
			if got, want := covers(rule, filter), matchTopic(ruleText, filterText); got != want {
				t.Fatalf("covers(rule %q, topic %q) = %v, MQTT match = %v", ruleText, filterText, got, want)
			}
		}

		// substitution never widens a rule
		r, err := newRule(ruleText)
		if err != nil {
			return
		}
		levels, ok := r.resolve("user", client)
		if !ok {
			return
		}
		if len(levels) != len(r.levels) {
			t.Fatalf("client %q: rule %q resolved to %d levels, has %d", client, ruleText, len(levels), len(r.levels))
		}
		for i := range levels {
			if isWild(levels[i]) != isWild(r.levels[i]) || strings.ContainsAny(levels[i], "/") {
				t.Fatalf("client %q: rule %q level %d resolved to %q", client, ruleText, i, levels[i])
			}
			if !isWild(levels[i]) && strings.ContainsAny(levels[i], "+#") && !strings.ContainsAny(r.levels[i], "+#") {
				t.Fatalf("client %q: rule %q level %d resolved to %q", client, ruleText, i, levels[i])
			}
		}
		if strings.HasPrefix(levels[0], "$") && !strings.HasPrefix(r.levels[0], "$") {
			t.Fatalf("client %q: rule %q resolved to the $ topic %q", client, ruleText, strings.Join(levels, "/"))
		}
	})
}

func isWild(level string) bool { return level == "+" || level == "#" }
