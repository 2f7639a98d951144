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
func WaitingConnects(s *Store) int { return s.connects.waitingCalls() }

// WaitingPeeks is how many Peeks wait for a batch to start.
func WaitingPeeks(s *Store) int { return s.peeks.waitingCalls() }
