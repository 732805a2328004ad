package redisstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit"
	"github.com/tollgate-dev/tollgate/ratelimit/redisstore"
)

func ExampleNew() {
	// ClientOptions sets the short timeouts a limiter on the request path
	// needs; New refuses a client that ignores context deadlines.
	client := redis.NewClient(redisstore.ClientOptions("127.0.0.1:6379"))
	defer client.Close()

	store, err := redisstore.New(client, redisstore.Options{
		Prefix:  fmt.Sprintf("example:%d:", time.Now().UnixNano()), // this run's keys only
		Failure: redisstore.FailLocal,                              // Redis down: limit per instance
	})
	if err != nil {
		panic(err)
	}

	perMinute, _ := ratelimit.ParsePolicy("2/1m")
	perMinute.Name = "per-minute"
	for range 3 {
		r, err := store.Take(context.Background(), "account:42", []ratelimit.Policy{perMinute}, 1)
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%v remaining=%d limit=%d/%s\n", r.Allowed, r.Remaining, r.Limit, ratelimit.FormatWindow(r.Window))
	}
	// Output:
	// allowed=true remaining=1 limit=2/1m
	// allowed=true remaining=0 limit=2/1m
	// allowed=false remaining=0 limit=2/1m
}
