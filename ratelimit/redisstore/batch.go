package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// call is one script run waiting for a batch.
type call struct {
	keys  []string
	args  []any
	reply []int64
	err   error
	// done receives true when reply and err are set, false when this call's
	// goroutine must lead the next batch (at most one of each).
	done     chan bool
	promoted bool      // told to lead, not started yet (guarded by batcher.mu)
	deadline time.Time // queued + the store's Timeout: never sent after it
}

// batcher sends concurrent calls to Redis together, in one pipeline per
// batch, without a goroutine of its own: the first caller to find fewer
// than maxLeaders batches in flight leads one, taking every pending call
// (up to maxBatch), and when its batch is done it passes the lead to a
// caller still waiting, if any. Every call has a deadline, Timeout after it
// was queued: a call still queued at its deadline fails with
// context.DeadlineExceeded without being sent, and a batch runs under the
// latest deadline of its calls (so a call just queued gets its whole
// Timeout, whatever the age of the others), so no caller waits more than
// about twice Timeout however many are queued. Safe for concurrent use.
type batcher struct {
	pipeline   func() redis.Pipeliner
	now        func() time.Time // time.Now; tests inject a clock
	timeout    time.Duration
	maxBatch   int
	maxLeaders int

	mu      sync.Mutex
	pending []*call
	leaders int // batches in flight or about to start
}

// run executes c, batched with concurrent calls, and returns when c's
// result is in.
func (b *batcher) run(c *call) {
	c.done = make(chan bool, 2)
	c.deadline = b.now().Add(b.timeout)
	b.mu.Lock()
	b.pending = append(b.pending, c)
	lead := b.leaders < b.maxLeaders
	if lead {
		b.leaders++
	}
	b.mu.Unlock()
	for {
		if lead {
			b.lead(c)
		}
		if <-c.done {
			return
		}
		lead = true // promoted: our turn to lead
	}
}

// lead runs one batch, starting with the leader's own call self if it is
// still pending, then passes the lead on or gives it up.
func (b *batcher) lead(self *call) {
	b.mu.Lock()
	self.promoted = false // leading now: no longer waiting to start
	batch := make([]*call, 0, min(len(b.pending), b.maxBatch))
	for i, c := range b.pending {
		if c == self {
			batch = append(batch, self)
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			break
		}
	}
	n := min(len(b.pending), b.maxBatch-len(batch))
	batch = append(batch, b.pending[:n]...)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	b.mu.Unlock()

	if live := b.expire(batch); len(live) > 0 {
		b.exec(live)
	}

	b.mu.Lock()
	var next *call
	for _, c := range b.pending {
		if c.promoted {
			next = nil // a caller told to lead has yet to start: it will take them
			break
		}
		if next == nil {
			next = c
		}
	}
	if next != nil {
		next.promoted = true
		// Under mu, so that no other leader can take next into its batch
		// and answer it (true) before it is told to lead: it would return
		// without leading, and the lead handed to it would be lost. done
		// holds two, so this never blocks.
		next.done <- false
	} else {
		b.leaders--
	}
	b.mu.Unlock()
}

// expire answers the calls of batch whose deadline has passed, with
// context.DeadlineExceeded (an outage: the failure policy decides), and
// returns the others.
func (b *batcher) expire(batch []*call) []*call {
	now := b.now()
	live := batch[:0]
	for _, c := range batch {
		if now.Before(c.deadline) {
			live = append(live, c)
			continue
		}
		c.err = fmt.Errorf("redisstore: queued for Timeout: %w", context.DeadlineExceeded)
		c.done <- true
	}
	return live
}

// exec runs a batch in one pipeline under the latest deadline of its
// calls, retrying with EVAL the calls that found the script missing from
// Redis's cache.
func (b *batcher) exec(batch []*call) {
	deadline := batch[0].deadline
	for _, c := range batch[1:] {
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	cmds := make([]*redis.Cmd, len(batch))
	pipe := b.pipeline()
	for i, c := range batch {
		cmds[i] = gcra.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are per command
	var retry []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe := b.pipeline()
		for _, i := range retry {
			cmds[i] = gcra.Eval(ctx, pipe, batch[i].keys, batch[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	for i, c := range batch {
		c.reply, c.err = cmds[i].Int64Slice()
		c.done <- true
	}
}

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}
