package auth

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxTopicLen is the longest topic or filter MQTT can carry (a two-byte length prefix).
const maxTopicLen = 65535

// checkFilter reports why s is not a valid MQTT topic filter: non-empty, valid UTF-8
// without NUL, '+' and '#' only as whole levels, '#' only as the last level.
func checkFilter(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty")
	case len(s) > maxTopicLen:
		return fmt.Errorf("%d bytes long; the maximum is %d", len(s), maxTopicLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("contains a NUL character")
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		if l == "+" || l == "#" {
			if l == "#" && i != len(levels)-1 {
				return fmt.Errorf("'#' must be the last level")
			}
			continue
		}
		if strings.ContainsAny(l, "+#") {
			return fmt.Errorf("level %d (%q): a wildcard must fill a whole level", i, l)
		}
	}
	return nil
}

// checkTopic reports why s is not a valid topic name to publish on: a filter without
// wildcards.
func checkTopic(s string) error {
	if err := checkFilter(s); err != nil {
		return err
	}
	if strings.ContainsAny(s, "+#") {
		return fmt.Errorf("contains a wildcard")
	}
	return nil
}

// stripShare removes the "$share/<group>/" prefix of a shared subscription and returns
// the filter proper. ok is false when the share syntax is malformed (empty group, a
// wildcard in the group, or nothing after the group).
func stripShare(filter string) (f string, ok bool) {
	rest, shared := strings.CutPrefix(filter, "$share/")
	if !shared {
		return filter, filter != "$share"
	}
	group, f, found := strings.Cut(rest, "/")
	if !found || group == "" || f == "" || strings.ContainsAny(group, "+#") {
		return "", false
	}
	return f, true
}

// covers reports whether every topic that filter (split into levels) can match is also
// matched by the rule pattern (split into levels). Level by level: a rule '#' covers the
// rest (including the parent level, as '#' matches it); a rule '+' covers a filter '+' or
// a literal; a rule literal covers only the same literal; a filter '#' is covered only by
// a rule '#', a filter '+' only by a rule '+' or '#'. Wildcards in the first level of a
// rule never cover a first level starting with '$' ([MQTT-4.7.2-1]), so '#' does not
// grant $SYS. A topic name is a filter without wildcards, so covers also decides whether
// a rule matches a topic.
func covers(rule, filter []string) bool {
	for i, r := range rule {
		if i == 0 && (r == "+" || r == "#") && len(filter) > 0 && strings.HasPrefix(filter[0], "$") {
			return false
		}
		if r == "#" {
			return true
		}
		if i >= len(filter) {
			return false
		}
		f := filter[i]
		switch {
		case f == "#":
			return false
		case r == "+":
			// covers '+' and any literal
		case f == "+" || f != r:
			return false
		}
	}
	return len(rule) == len(filter)
}

// checkPlaceholders reports why a rule topic or client pattern has a '%' that is not one
// of the allowed placeholders (allowed holds the letters, e.g. "uc"); "%%" is a literal '%'.
func checkPlaceholders(s, allowed string) error {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 < len(s) && (s[i+1] == '%' || strings.IndexByte(allowed, s[i+1]) >= 0) {
			i++
			continue
		}
		var names []string
		for _, c := range allowed {
			names = append(names, "%"+string(c))
		}
		return fmt.Errorf("'%%' at byte %d: want %s or %%%% for a literal '%%'", i, strings.Join(names, ", "))
	}
	return nil
}

// safeValue reports whether v may be substituted into a rule topic: a value that is empty
// or contains '/', '+', '#' or NUL would change the rule's shape (add levels, become a
// wildcard) or name a different topic, so the rule does not match instead.
func safeValue(v string) bool {
	return v != "" && utf8.ValidString(v) && !strings.ContainsAny(v, "/+#\x00")
}

// expand substitutes %u (user) and %c (client) in s and turns "%%" into '%'. It returns
// ok=false when s uses a placeholder whose value is not safe (see safeValue); an empty
// user (JWT and anonymous clients have no verified username) is never safe.
func expand(s, user, client string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'u':
			if !safeValue(user) {
				return "", false
			}
			b.WriteString(user)
		case 'c':
			if !safeValue(client) {
				return "", false
			}
			b.WriteString(client)
		case '%':
			b.WriteByte('%')
		default: // refused at load; keep literally
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String(), true
}

// rule is a compiled ACL rule topic.
type rule struct {
	topic  string   // as written in the file
	levels []string // topic split at '/', placeholders not yet substituted
	vars   bool     // some level has a '%'
}

func newRule(topic string) (rule, error) {
	if err := checkFilter(topic); err != nil {
		return rule{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	if err := checkPlaceholders(topic, "uc"); err != nil {
		return rule{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	if topic == "$share" || strings.HasPrefix(topic, "$share/") {
		return rule{}, fmt.Errorf("topic %q: a rule names topics; \"$share/<group>/\" is removed from a filter before it is checked, so write the rule for the filter proper", topic)
	}
	return rule{topic: topic, levels: strings.Split(topic, "/"), vars: strings.IndexByte(topic, '%') >= 0}, nil
}

// resolve returns the rule's levels for this user and client, or ok=false when a
// placeholder cannot be safely substituted. A substitution that would make the first
// level start with '$' is refused too: only a rule that names a $-topic literally grants
// one (a client id "$SYS" must not turn "%c/#" into "$SYS/#").
func (r rule) resolve(user, client string) ([]string, bool) {
	if !r.vars {
		return r.levels, true
	}
	out := make([]string, len(r.levels))
	for i, l := range r.levels {
		v, ok := expand(l, user, client)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	if strings.HasPrefix(out[0], "$") && !strings.HasPrefix(r.levels[0], "$") {
		return nil, false
	}
	return out, true
}

// coversFilter reports whether the rule, resolved for user and client, covers filter
// (already split into levels).
func (r rule) coversFilter(filter []string, user, client string) bool {
	levels, ok := r.resolve(user, client)
	return ok && covers(levels, filter)
}
