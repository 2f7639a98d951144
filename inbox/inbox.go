// Package inbox holds the rules for directed messages that the router, the nodes and the
// CLI share: what a valid client id and topic are, and each client's inbox topic.
package inbox

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultPrefix is the inbox topic prefix: client c's inbox is DefaultPrefix + c.
const DefaultPrefix = "inbox/"

// MaxClientIDLen is the longest client id accepted (bytes). MQTT allows 65535; a push
// service's ids are device or user ids, and every byte is stored with each presence entry.
const MaxClientIDLen = 128

// MaxTopicLen is the longest topic accepted for a directed message (bytes).
const MaxTopicLen = 1024

// ProbeTopicPrefix: client c may always publish to and subscribe to exactly
// ProbeTopicPrefix+c, so a monitor's end-to-end probe works with any credentials and no
// client can reach another through it.
const ProbeTopicPrefix = "$switchboard/probe/"

// Topic returns the inbox topic of client.
func Topic(prefix, client string) string { return prefix + client }

// ValidateClientID checks a client id used for directed delivery: 1-128 bytes of UTF-8
// without control characters and without '/', '+' or '#' (which would make the inbox topic
// ambiguous or a wildcard).
func ValidateClientID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("client id is empty")
	case len(id) > MaxClientIDLen:
		return fmt.Errorf("client id %.24q... is %d bytes long; the maximum is %d", id, len(id), MaxClientIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("client id %q is not valid UTF-8", id)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return r == '/' || r == '+' || r == '#' || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("client id %q has %q at byte %d; '/', '+', '#' and control characters are not allowed", id, id[i:i+1], i)
	}
	return nil
}

// ValidateTopic checks a topic name a directed message is published on: non-empty, at most
// 1024 bytes, UTF-8 without NUL, no wildcards, not a $-topic (those are the broker's).
func ValidateTopic(topic string) error {
	switch {
	case topic == "":
		return fmt.Errorf("topic is empty")
	case len(topic) > MaxTopicLen:
		return fmt.Errorf("topic %.24q... is %d bytes long; the maximum is %d", topic, len(topic), MaxTopicLen)
	case !utf8.ValidString(topic):
		return fmt.Errorf("topic %q is not valid UTF-8", topic)
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("topic %q contains a wildcard ('+' or '#'); a message is published on one topic", topic)
	case strings.ContainsRune(topic, 0):
		return fmt.Errorf("topic %q contains a NUL character", topic)
	case strings.HasPrefix(topic, "$"):
		return fmt.Errorf("topic %q starts with '$', which is reserved for the broker", topic)
	}
	return nil
}

// Matches reports whether the MQTT topic filter matches topic (wildcards '+' and '#').
func Matches(filter, topic string) bool {
	if strings.HasPrefix(filter, "$share/") {
		// $share/<group>/<filter>
		rest := strings.TrimPrefix(filter, "$share/")
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			filter = rest[i+1:]
		}
	}
	fs := strings.Split(filter, "/")
	ts := strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return true
		}
		if i >= len(ts) {
			return false
		}
		if f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}
