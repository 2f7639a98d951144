package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

// SetKeyGrace sets how long s's mailbox keys outlive their latest message, so a test can
// watch an abandoned mailbox vanish.
func SetKeyGrace(s *Store, d time.Duration) { s.grace = d }

// TakeNoticesAs runs TakeNotices as the call named token, as a go-redis retry of that
// call would run again.
func TakeNoticesAs(ctx context.Context, s *Store, node string, n int, token string) ([]store.Notice, error) {
	return s.takeNotices(ctx, node, n, token)
}

// AddHook adds a go-redis hook to s's client, so a test can see the commands s sends.
func AddHook(s *Store, h redis.Hook) { s.rdb.AddHook(h) }
