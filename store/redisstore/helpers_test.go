package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/switchboard-mqtt/switchboard/store"
)

func testContext(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

// rawClient is a plain go-redis client for looking at the keys a store wrote.
func rawClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// sameNotice reports whether got, as taken, is want, as notified: the store sets Seq.
func sameNotice(got, want store.Notice) bool {
	return got.Seq != 0 && got.Kind == want.Kind && got.Client == want.Client && got.Session == want.Session
}
