package bench

import (
	"fmt"
	"net/netip"
	"strings"
)

// maxSources bounds a source address list.
const maxSources = 4096

// ParseSourceIPs parses a comma-separated list of IPv4 addresses and inclusive ranges
// ("127.0.0.2-127.0.0.65"): the source addresses a storm's connections are spread over, so
// a broker's per-address connection limit does not throttle a benchmark from one machine.
func ParseSourceIPs(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("source address %q: want an IPv4 address or range A-B", part)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(hi)); err != nil || !b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("source range %q: want A-B with A <= B, both IPv4", part)
			}
		}
		for ip := a; ; ip = ip.Next() {
			if len(out) >= maxSources {
				return nil, fmt.Errorf("source addresses: more than %d", maxSources)
			}
			out = append(out, ip.String())
			if ip == b {
				break
			}
		}
	}
	return out, nil
}

// sourceFor picks connection i's source address (round-robin; "" for the default).
func sourceFor(sources []string, i int) string {
	if len(sources) == 0 {
		return ""
	}
	return sources[i%len(sources)]
}
