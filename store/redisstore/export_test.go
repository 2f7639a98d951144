package redisstore

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// SetKeyGrace sets how long s's mailbox keys outlive their latest message, so a test can
// watch an abandoned mailbox vanish.
func SetKeyGrace(s *Store, d time.Duration) { s.grace = d }

// AddHook adds a go-redis hook to s's client, so a test can see the commands s sends.
func AddHook(s *Store, h redis.Hook) { s.rdb.AddHook(h) }

// WaitingConnects is how many Connects wait for a batch to start.
func WaitingConnects(s *Store) int {
	s.connects.mu.Lock()
	defer s.connects.mu.Unlock()
	return len(s.connects.waiting)
}
