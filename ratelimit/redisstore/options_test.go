package redisstore_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

// TestNewRefusesNegativeOptions: a negative option is refused by New, not
// taken for "off" (as DenyCacheSize's is): MaxBatch -1 used to panic in
// the first Take, holding the batcher's lock for good.
func TestNewRefusesNegativeOptions(t *testing.T) {
	client := redis.NewClient(redisstore.ClientOptions("127.0.0.1:1"))
	t.Cleanup(func() { client.Close() })
	for _, tt := range []struct {
		name string
		opts redisstore.Options
	}{
		{"MaxBatch", redisstore.Options{MaxBatch: -1}},
		{"Timeout", redisstore.Options{Timeout: -time.Millisecond}},
		{"BreakerThreshold", redisstore.Options{BreakerThreshold: -1}},
		{"BreakerCooldown", redisstore.Options{BreakerCooldown: -time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := redisstore.New(client, tt.opts); err == nil {
				t.Errorf("New(%+v) = %v, nil; want an error", tt.opts, s)
			}
		})
	}
	if _, err := redisstore.New(client, redisstore.Options{DenyCacheSize: -1}); err != nil {
		t.Errorf("New with DenyCacheSize -1 (no cache): %v", err)
	}
}
