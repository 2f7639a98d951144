package routes

import "strings"

// level is one level of the filter trie: its children by topic level ("+" and "#" as
// themselves), and the entries of the filters that end here.
type level struct {
	children map[string]*level
	entries  *entries
}

// entries are the nodes holding one filter: plain subscriptions by node, shared ones by
// their whole "$share/..." filter and node.
type entries struct {
	plain  map[string]struct{}
	shared map[string]map[string]struct{}
}

func newLevel() *level { return &level{children: map[string]*level{}} }

// add records that node holds filter (a shared one under the filter it shares).
func (l *level) add(filter, node string) {
	key, path := filter, filter
	_, rest, shared := SplitShared(filter)
	if shared {
		path = rest
	}
	for _, part := range strings.Split(path, "/") {
		c := l.children[part]
		if c == nil {
			c = newLevel()
			l.children[part] = c
		}
		l = c
	}
	if l.entries == nil {
		l.entries = &entries{}
	}
	e := l.entries
	if !shared {
		if e.plain == nil {
			e.plain = map[string]struct{}{}
		}
		e.plain[node] = struct{}{}
		return
	}
	if e.shared == nil {
		e.shared = map[string]map[string]struct{}{}
	}
	if e.shared[key] == nil {
		e.shared[key] = map[string]struct{}{}
	}
	e.shared[key][node] = struct{}{}
}

// remove forgets that node holds filter, pruning levels left empty.
func (l *level) remove(filter, node string) {
	key, path := filter, filter
	_, rest, shared := SplitShared(filter)
	if shared {
		path = rest
	}
	l.removePath(strings.Split(path, "/"), key, node, shared)
}

func (l *level) removePath(parts []string, key, node string, shared bool) bool {
	if len(parts) == 0 {
		if e := l.entries; e != nil {
			if shared {
				if ns := e.shared[key]; ns != nil {
					delete(ns, node)
					if len(ns) == 0 {
						delete(e.shared, key)
					}
				}
			} else {
				delete(e.plain, node)
			}
			if len(e.plain) == 0 && len(e.shared) == 0 {
				l.entries = nil
			}
		}
	} else if c := l.children[parts[0]]; c != nil && c.removePath(parts[1:], key, node, shared) {
		delete(l.children, parts[0])
	}
	return l.entries == nil && len(l.children) == 0
}

// match calls f with the entries of every filter matching the topic levels from i on.
func (l *level) match(parts []string, i int, dollar bool, f func(*entries)) {
	wild := !(dollar && i == 0) // [MQTT-4.7.2-1]
	if wild {
		if c := l.children["#"]; c != nil && c.entries != nil {
			f(c.entries) // "#" matches the parent level too, and everything below
		}
	}
	if i == len(parts) {
		if l.entries != nil {
			f(l.entries)
		}
		return
	}
	if c := l.children[parts[i]]; c != nil {
		c.match(parts, i+1, dollar, f)
	}
	if wild {
		if c := l.children["+"]; c != nil {
			c.match(parts, i+1, dollar, f)
		}
	}
}
