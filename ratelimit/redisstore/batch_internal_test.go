package redisstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate-dev/tollgate/ratelimit"
)

// instantReplies answers every pipelined script call at once without a
// network round trip, so batches complete in microseconds.
type instantReplies struct{}

func (instantReplies) DialHook(next redis.DialHook) redis.DialHook { return next }
func (instantReplies) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { return nil }
}
func (instantReplies) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			c.(*redis.Cmd).SetVal([]any{int64(1), int64(0), int64(1)})
		}
		return nil
	}
}

// TestBatchLeaderSlots: once every call is done, no batch is in flight and
// no lead is held. A lead passed to a waiting call must reach it before
// another leader can answer that call, or the call returns without leading
// and the lead is lost for the life of the process (down to one batch in
// flight of four).
func TestBatchLeaderSlots(t *testing.T) {
	client := redis.NewClient(ClientOptions("127.0.0.1:1"))
	defer client.Close()
	client.AddHook(instantReplies{})
	b := &batcher{pipeline: client.Pipeline, now: time.Now, timeout: time.Second, maxBatch: DefaultMaxBatch, maxLeaders: batchLeaders}
	for round := range 40 {
		var wg sync.WaitGroup
		for range 256 {
			wg.Go(func() {
				for range 20 {
					b.run(&call{keys: []string{"k"}, args: []any{1, 1, 1}})
				}
			})
		}
		wg.Wait()
		b.mu.Lock()
		leaders, pending := b.leaders, len(b.pending)
		b.mu.Unlock()
		if leaders != 0 || pending != 0 {
			t.Fatalf("round %d: every call done, yet leaders = %d, pending = %d (want 0, 0): a leader slot leaked", round, leaders, pending)
		}
	}
}

// TestKeysShareHashTag: the names of one key's policies carry the same
// non-empty Redis Cluster hash tag, whatever the key (an empty tag, "{}",
// makes Cluster hash each name whole: CROSSSLOT for a multi-policy call).
func TestKeysShareHashTag(t *testing.T) {
	var mu sync.Mutex
	var names [][]string
	client := redis.NewClient(ClientOptions("127.0.0.1:1"))
	t.Cleanup(func() { client.Close() })
	client.AddHook(recordKeys{record: func(keys []string) { mu.Lock(); names = append(names, keys); mu.Unlock() }})
	s, err := New(client, Options{MaxBatch: 1})
	if err != nil {
		t.Fatal(err)
	}
	policies := []ratelimit.Policy{{Limit: 10, Window: time.Second}, {Limit: 1000, Window: time.Hour}}
	for _, key := range []string{"", "}", "}a", "a}b", "{", "{}", "key_1", "ip:[::1]"} {
		names = nil
		_, _ = s.Take(context.Background(), key, policies, 1)
		if len(names) != 1 || len(names[0]) != len(policies) {
			t.Fatalf("key %q: calls %v, want one with %d names", key, names, len(policies))
		}
		tag := hashTag(names[0][0])
		for _, n := range names[0] {
			if got := hashTag(n); got == "" || got != tag {
				t.Errorf("key %q: name %q has hash tag %q, want the non-empty %q of %q", key, n, got, tag, names[0][0])
			}
		}
	}
}

// hashTag is the part of name Redis Cluster hashes when it is not all of
// it: between the first "{" and the next "}", if non-empty.
func hashTag(name string) string {
	_, after, ok := strings.Cut(name, "{")
	if !ok {
		return ""
	}
	tag, _, ok := strings.Cut(after, "}")
	if !ok {
		return ""
	}
	return tag
}

// recordKeys hands the keys of each script call to record and answers
// every call with an admission, without a network round trip.
type recordKeys struct{ record func([]string) }

func (recordKeys) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h recordKeys) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args() // EVALSHA sha numkeys key... arg...
		n, _ := args[2].(int)
		keys := make([]string, 0, n)
		for _, a := range args[3 : 3+n] {
			keys = append(keys, a.(string))
		}
		h.record(keys)
		vals := []any{int64(1), int64(0)}
		for range n {
			vals = append(vals, int64(1))
		}
		cmd.(*redis.Cmd).SetVal(vals)
		return nil
	}
}
func (recordKeys) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestBatchExpiresQueuedCalls: a call still queued at its deadline (Timeout
// after it was queued) is answered with context.DeadlineExceeded without
// being sent, and a batch runs under the latest deadline of its calls, so
// a call just queued gets its whole Timeout and no call waits more than
// about twice Timeout however many are queued.
func TestBatchExpiresQueuedCalls(t *testing.T) {
	var mu sync.Mutex
	var sent []int            // calls per pipeline
	var deadlines []time.Time // each pipeline's context deadline
	client := redis.NewClient(ClientOptions("127.0.0.1:1"))
	t.Cleanup(func() { client.Close() })
	client.AddHook(pipelineRecorder{record: func(ctx context.Context, n int) {
		d, _ := ctx.Deadline()
		mu.Lock()
		sent, deadlines = append(sent, n), append(deadlines, d)
		mu.Unlock()
	}})
	now := time.Now().Add(time.Hour) // the batcher's clock; contexts still run on the real one
	b := &batcher{pipeline: client.Pipeline, now: func() time.Time { return now }, timeout: time.Second, maxBatch: DefaultMaxBatch, maxLeaders: batchLeaders}
	// Three calls queued while the batcher is busy, at now-2s (past its
	// deadline by now), now-500ms and now-200ms.
	queued := func(at time.Duration) *call {
		return &call{keys: []string{"k"}, args: []any{1, 1, 1}, done: make(chan bool, 2), deadline: now.Add(at + b.timeout)}
	}
	late, early, recent := queued(-2*time.Second), queued(-500*time.Millisecond), queued(-200*time.Millisecond)
	b.pending, b.leaders = []*call{late, early, recent}, 1
	b.lead(late)
	for _, c := range []*call{late, early, recent} {
		if !<-c.done {
			t.Fatal("a call was told to lead: want every call answered")
		}
	}
	if !errors.Is(late.err, context.DeadlineExceeded) {
		t.Errorf("call queued past its deadline: err = %v, want DeadlineExceeded", late.err)
	}
	if early.err != nil || recent.err != nil {
		t.Errorf("calls within their deadline: errs %v, %v", early.err, recent.err)
	}
	if len(sent) != 1 || sent[0] != 2 {
		t.Errorf("pipelines sent %v, want one of 2 calls (not the expired one)", sent)
	}
	if len(deadlines) == 1 && !deadlines[0].Equal(recent.deadline) {
		t.Errorf("batch deadline %v, want the latest call's %v", deadlines[0], recent.deadline)
	}
	if b.leaders != 0 || len(b.pending) != 0 {
		t.Errorf("leaders %d pending %d after the batch, want 0 0", b.leaders, len(b.pending))
	}
}

// pipelineRecorder hands each pipeline's context and size to record and
// answers every call in it with an admission, without a round trip.
type pipelineRecorder struct {
	record func(ctx context.Context, n int)
}

func (pipelineRecorder) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (pipelineRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h pipelineRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.record(ctx, len(cmds))
		for _, c := range cmds {
			c.(*redis.Cmd).SetVal([]any{int64(1), int64(0), int64(1)})
		}
		return nil
	}
}
