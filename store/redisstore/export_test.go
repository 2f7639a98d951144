package redisstore

import (
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// SetKeyGrace sets how long s's mailbox keys outlive their latest message, so a test can
// watch an abandoned mailbox vanish.
func SetKeyGrace(s *Store, d time.Duration) { s.grace = d }

// AddHook adds a go-redis hook to s's client, so a test can see the commands s sends.
func AddHook(s *Store, h redis.Hook) { s.rdb.AddHook(h) }

// WaitingConnects is how many Connects wait for a batch to start.
func WaitingConnects(s *Store) int { return s.connects.waitingCalls() }

// WaitingPeeks is how many Peeks wait for a batch to start.
func WaitingPeeks(s *Store) int { return s.peeks.waitingCalls() }

// WaitingLookups is how many Lookups wait for a batch to start.
func WaitingLookups(s *Store) int { return s.lookups.waitingCalls() }

// WaitingDisconnects is how many Disconnects wait for a batch to start.
func WaitingDisconnects(s *Store) int { return s.disconnects.waitingCalls() }

// RefusedByGuard reports whether err is a call the outage guard did not send.
func RefusedByGuard(err error) bool { return errors.Is(err, errOutOfReach) }

// SeqKey is the key of client's counter under prefix.
func SeqKey(prefix, client string) string { return keys{prefix}.seq(client) }

// InfoFields is infoFields: INFO's "field:value" lines.
func InfoFields(info string) map[string]string { return infoFields(info) }
