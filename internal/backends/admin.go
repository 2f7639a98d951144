package backends

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// redisDo sends one command to the Redis server (or Sentinel) at addr on a connection of its
// own and returns the reply. It is for the few administrative commands the helpers send
// while they wait for servers to agree; nothing here is on a hot path.
func redisDo(ctx context.Context, addr string, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{
		Addr:        addr,
		Protocol:    2, // plain arrays and strings, Sentinel's replies included
		DialTimeout: time.Second,
		ReadTimeout: 2 * time.Second,
		MaxRetries:  -1,
		PoolSize:    1,
		// A self-hosted Redis refuses the maintenance notifications handshake.
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	defer c.Close()
	v, err := c.Do(ctx, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("redis %s: %v: %w", addr, args, err)
	}
	return v, nil
}

// redisInfo returns the fields of one INFO section (or of CLUSTER INFO, with section
// "cluster info") of the server at addr.
func redisInfo(ctx context.Context, addr, section string) (map[string]string, error) {
	args := []any{"info", section}
	if section == "cluster info" {
		args = []any{"cluster", "info"}
	}
	v, err := redisDo(ctx, addr, args...)
	if err != nil {
		return nil, err
	}
	text, _ := v.(string)
	fields := map[string]string{}
	for line := range strings.Lines(text) {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			fields[k] = val
		}
	}
	return fields, nil
}

// waitFor calls cond every 50ms until it reports true or fails, or ctx ends; the error then
// says what cond last saw.
func waitFor(ctx context.Context, what string, cond func(ctx context.Context) (bool, error)) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := cond(cctx)
		cancel()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
