package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/arrival"
)

// KeyRecord is what a KeyStore knows about a stored key.
type KeyRecord struct {
	ID        string
	AccountID string
	Scopes    []string
	RatePlan  string     // e.g. "600/1m"; empty means the default plan
	ExpiresAt *time.Time // nil: never expires
	RevokedAt *time.Time // nil: not revoked
}

// KeyStore is the storage a Verifier reads keys from and reports use to.
// Implementations must be safe for concurrent use.
type KeyStore interface {
	// LookupKeyByHash returns the key whose SHA-256 hash is hash. When there
	// is none it returns an error that matches ErrUnknown (errors.Is); any
	// other error means the store failed.
	LookupKeyByHash(ctx context.Context, hash [32]byte) (KeyRecord, error)
	// TouchKeys sets last_used_at of each key ID in used to its time, in
	// one batch. Unknown IDs are ignored.
	TouchKeys(ctx context.Context, used map[string]time.Time) error
}

// Defaults of a Verifier.
const (
	// DefaultTTL bounds how long a verified (or revoked) key is served from
	// the cache: a revocation reaches every instance within this time.
	DefaultTTL = time.Second
	// DefaultNegativeTTL bounds how long an unknown hash is remembered.
	DefaultNegativeTTL = time.Second
	// DefaultMaxEntries bounds the cache size.
	DefaultMaxEntries = 10_000
)

// touchGranularity: a cached key's last use is recorded again only when it
// is this much newer than the unflushed one, so last_used_at is accurate to
// within this much and a hot key does not write memory on every request.
const touchGranularity = int64(time.Second)

const numShards = 16

// Option configures a Verifier.
type Option func(*Verifier)

// WithClock sets the clock the Verifier reads, once per Verify. Default
// time.Now, or the request's arrival time when the context carries one
// read from the system clock (arrival.From); a Verifier given a clock
// always reads it.
func WithClock(now func() time.Time) Option {
	return func(v *Verifier) { v.now, v.ownClock = now, true }
}

// WithTTL sets how long a store answer for a known key (valid or revoked)
// is reused. Zero disables caching of known keys. Default DefaultTTL.
func WithTTL(d time.Duration) Option {
	return func(v *Verifier) { v.ttl = d }
}

// WithNegativeTTL sets how long an unknown hash is remembered. Zero
// disables negative caching. Default DefaultNegativeTTL.
func WithNegativeTTL(d time.Duration) Option {
	return func(v *Verifier) { v.negTTL = d }
}

// WithMaxEntries bounds the number of cached hashes (at least 16).
// Default DefaultMaxEntries.
func WithMaxEntries(n int) Option {
	return func(v *Verifier) { v.maxEntries = n }
}

// Verifier checks presented keys: format and checksum first, then the
// store, through a short-lived cache keyed by the key's SHA-256 hash.
// Expiry is checked against the clock on every call, cached or not.
// Each successful Verify records the key's use in memory; Flush (or Run)
// writes those uses to the store in one batch.
//
// A Verifier is safe for concurrent use.
type Verifier struct {
	store      KeyStore
	now        func() time.Time
	ownClock   bool // set by WithClock: never take the time from the context
	ttl        time.Duration
	negTTL     time.Duration
	maxEntries int
	shardMax   int
	shards     [numShards]shard

	mu      sync.Mutex
	pending map[string]int64 // key ID → unix nanos of last use, not yet flushed
}

type shard struct {
	mu  sync.RWMutex
	m   map[[32]byte]*entry
	gen atomic.Uint64 // bumped by Forget
	_   [32]byte      // keep shards on separate cache lines
}

// entry is one cached store answer. Only used changes after insertion.
type entry struct {
	fetched   time.Time
	err       error // nil, ErrUnknown or ErrRevoked
	p         Principal
	expiresAt time.Time
	expires   bool
	used      atomic.Int64 // unix nanos of the latest unflushed use; 0 if none
	uncached  bool         // not in the cache: uses go straight to pending
	gone      atomic.Bool  // left the cache: touch hands its use to pending
}

// NewVerifier returns a Verifier reading keys from ks.
func NewVerifier(ks KeyStore, opts ...Option) *Verifier {
	v := &Verifier{
		store:      ks,
		now:        time.Now,
		ttl:        DefaultTTL,
		negTTL:     DefaultNegativeTTL,
		maxEntries: DefaultMaxEntries,
		pending:    make(map[string]int64),
	}
	for _, o := range opts {
		o(v)
	}
	v.shardMax = max(v.maxEntries/numShards, 1)
	for i := range v.shards {
		v.shards[i].m = make(map[[32]byte]*entry)
	}
	return v
}

// Verify checks secret and returns the Principal it authenticates.
//
// Errors: ErrMissing (empty secret), ErrMalformed (length, prefix,
// characters or checksum; no store lookup is made), ErrUnknown, ErrRevoked,
// ErrExpired, or ErrUnavailable wrapping the store's error. A cached valid
// key is verified without allocating.
func (v *Verifier) Verify(ctx context.Context, secret string) (Principal, error) {
	if len(secret) != KeyLen {
		_, err := ParseKey(secret) // ErrMissing or the length error
		return Principal{}, err
	}
	// A cached answer is only ever stored for a hash of a well-formed key,
	// and SHA-256 does not collide: a cache hit skips ParseKey.
	h := hashKey(secret)
	now, ok := time.Time{}, false
	if !v.ownClock {
		now, ok = arrival.From(ctx) // the chain already read the clock
	}
	if !ok {
		now = v.now()
	}
	sh := &v.shards[h[0]%numShards]
	sh.mu.RLock()
	e := sh.m[h]
	sh.mu.RUnlock()
	if e == nil || !v.fresh(e, now) {
		parsed, err := ParseKey(secret)
		if err != nil {
			return Principal{}, err
		}
		if e, err = v.load(ctx, sh, h, parsed, now); err != nil {
			return Principal{}, err
		}
	}
	if e.err != nil {
		return Principal{}, e.err
	}
	if e.expires && !now.Before(e.expiresAt) {
		return Principal{}, ErrExpired
	}
	v.touch(e, now)
	return e.p, nil
}

// touch records a use of e's key at now.
func (v *Verifier) touch(e *entry, now time.Time) {
	n := now.UnixNano()
	if e.uncached {
		v.mu.Lock()
		v.pending[e.p.KeyID] = max(v.pending[e.p.KeyID], n)
		v.mu.Unlock()
		return
	}
	for {
		old := e.used.Load()
		if old != 0 && n-old < touchGranularity {
			return
		}
		if e.used.CompareAndSwap(old, n) {
			break
		}
	}
	if e.gone.Load() {
		v.keepUse(e)
	}
}

// fresh reports whether e may still be served at now.
func (v *Verifier) fresh(e *entry, now time.Time) bool {
	ttl := v.ttl
	if e.err == ErrUnknown {
		ttl = v.negTTL
	}
	age := now.Sub(e.fetched)
	// With arrival times (not the Verifier's own clock), a request that
	// arrived before the one that loaded e sees a negative age: e is then
	// newer than the request, and fresh.
	return age < ttl && (age >= 0 || !v.ownClock)
}

// load asks the store about h and caches the answer.
func (v *Verifier) load(ctx context.Context, sh *shard, h [32]byte, parsed Parsed, now time.Time) (*entry, error) {
	gen := sh.gen.Load()
	rec, err := v.store.LookupKeyByHash(ctx, h)
	e := &entry{fetched: now}
	switch {
	case errors.Is(err, ErrUnknown):
		e.err = ErrUnknown
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		e.p = Principal{
			AccountID: rec.AccountID,
			KeyID:     rec.ID,
			Scopes:    Scopes(slices.Clip(slices.Clone(rec.Scopes))),
			RatePlan:  rec.RatePlan,
			Live:      parsed.Live(),
		}
		if rec.RevokedAt != nil {
			e.err = ErrRevoked
		}
		if rec.ExpiresAt != nil {
			e.expires, e.expiresAt = true, *rec.ExpiresAt
		}
	}
	if (e.err == ErrUnknown && v.negTTL <= 0) || (e.err != ErrUnknown && v.ttl <= 0) {
		e.uncached = true
		return e, nil
	}
	sh.mu.Lock()
	if old, ok := sh.m[h]; ok && old.fetched.After(e.fetched) || sh.gen.Load() != gen {
		sh.mu.Unlock()
		e.uncached = true
		return e, nil
	}
	if old, ok := sh.m[h]; ok {
		old.gone.Store(true)
		v.keepUse(old)
		delete(sh.m, h)
	}
	if len(sh.m) >= v.shardMax {
		v.evict(sh, now)
	}
	sh.m[h] = e
	sh.mu.Unlock()
	return e, nil
}

// evict makes room in sh, which is locked: stale entries go first, then
// arbitrary ones.
func (v *Verifier) evict(sh *shard, now time.Time) {
	for h, e := range sh.m {
		if !v.fresh(e, now) {
			e.gone.Store(true)
			v.keepUse(e)
			delete(sh.m, h)
		}
	}
	for h, e := range sh.m {
		if len(sh.m) < v.shardMax {
			break
		}
		e.gone.Store(true)
		v.keepUse(e)
		delete(sh.m, h)
	}
}

// keepUse moves the unflushed use of an entry leaving the cache to pending.
func (v *Verifier) keepUse(e *entry) {
	n := e.used.Swap(0)
	if n == 0 || e.p.KeyID == "" {
		return
	}
	v.mu.Lock()
	v.pending[e.p.KeyID] = max(v.pending[e.p.KeyID], n)
	v.mu.Unlock()
}

// Forget drops the cached answer for a key hash, so the next Verify of
// that key asks the store. Call it after revoking a key on this instance;
// other instances see the revocation within the TTL.
func (v *Verifier) Forget(hash [32]byte) {
	sh := &v.shards[hash[0]%numShards]
	sh.mu.Lock()
	sh.gen.Add(1)
	if e, ok := sh.m[hash]; ok {
		e.gone.Store(true)
		v.keepUse(e)
		delete(sh.m, hash)
	}
	sh.mu.Unlock()
}

// Flush writes the key uses recorded since the last Flush to the store, in
// one TouchKeys call. On failure the uses are kept for the next Flush.
func (v *Verifier) Flush(ctx context.Context) error {
	v.mu.Lock()
	used := v.pending
	v.pending = make(map[string]int64)
	v.mu.Unlock()
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.RLock()
		for _, e := range sh.m {
			if e.p.KeyID == "" {
				continue
			}
			if n := e.used.Swap(0); n != 0 {
				used[e.p.KeyID] = max(used[e.p.KeyID], n)
			}
		}
		sh.mu.RUnlock()
	}
	if len(used) == 0 {
		return nil
	}
	batch := make(map[string]time.Time, len(used))
	for id, n := range used {
		batch[id] = time.Unix(0, n).UTC()
	}
	if err := v.store.TouchKeys(ctx, batch); err != nil {
		v.mu.Lock()
		for id, n := range used {
			v.pending[id] = max(v.pending[id], n)
		}
		v.mu.Unlock()
		return fmt.Errorf("auth: flush key use: %w", err)
	}
	return nil
}

// Run calls Flush every interval until ctx is done, then flushes a last
// time (with a fresh 5 s deadline) and returns that Flush's error. Errors
// of the periodic flushes are not returned: their uses are retried at the
// next tick.
func (v *Verifier) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return v.Flush(fctx)
		case <-t.C:
			_ = v.Flush(ctx)
		}
	}
}
