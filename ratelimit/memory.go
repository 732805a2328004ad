package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/arrival"
)

// DefaultMaxKeys is the MemoryStore's key bound when MemoryOptions.MaxKeys
// is zero.
const DefaultMaxKeys = 1 << 20

const (
	numShards = 256 // a power of two
	minSweep  = 64  // a shard sweeps idle keys once it holds this many
	minCells  = 16  // smallest hash table of a shard (a power of two)
	sampleLen = 8   // keys examined to pick one to evict from a full shard
	inlineLen = 4   // policies per Take handled without allocating
	// A full shard whose sweep frees less than 1/headroomDiv of its bound
	// evicts down to that much room, so that sweeps of a full shard are at
	// least that many inserts apart.
	headroomDiv = 16
	// idleGrace is how long a key's state must have been idle (its TAT
	// passed) before a sweep may drop it: a decision at an earlier time
	// (TakeAt, or a request's arrival time) that runs after the sweep
	// still finds the state it needs if it is at most this much older.
	idleGrace = int64(time.Second)
)

// Sentinel TATs. Real TATs stay far below them: a decision's time is
// clamped to within maxNow of the store's epoch, and an admission puts a
// TAT at most MaxTolerance after it.
const (
	tatDead   = math.MaxInt64     // the entry has left the table
	tatLocked = math.MaxInt64 - 1 // a multi-policy decision holds the slot
)

// maxNow bounds a decision's time, in nanoseconds either side of the
// store's epoch (about 73 years): a time further away (TakeAt(time.Time{}),
// a clock that jumped) is decided at the bound. Within it, TATs stay below
// maxNow+MaxTolerance and the difference of any TAT and time fits in an
// int64, so the arithmetic cannot wrap (into an admission, or a TAT equal
// to a sentinel).
const maxNow = 1 << 61

// sinceEpoch returns t in nanoseconds since the store's epoch, clamped to
// ±maxNow.
func (s *MemoryStore) sinceEpoch(t time.Time) int64 {
	return min(max(int64(t.Sub(s.epoch)), -maxNow), maxNow)
}

// MemoryOptions configures a MemoryStore. The zero value is ready to use.
type MemoryOptions struct {
	// Now is the store's clock, read once per Take. Nil means the
	// monotonic clock behind time.Now, read through time.Since so a
	// decision costs one cheap clock read. Tests inject a fake clock.
	Now func() time.Time
	// MaxKeys bounds how many keys the store holds (approximately: the
	// bound is enforced per shard, MaxKeys/256 each). Zero means
	// DefaultMaxKeys. Keys whose state is idle (their theoretical arrival
	// time has passed, so they are indistinguishable from a fresh key, for
	// a second: see TakeAt) are dropped first: a full shard drops all its idle keys before it evicts
	// any key still limiting. Only when a shard is full of keys that are
	// still limiting is one of them evicted, the one that becomes idle
	// soonest among a small sample (and, when that happens right after a
	// sweep, a few more, to leave the shard some room), which forgets the
	// rest of its window. Memory stays bounded under a
	// flood of distinct keys at the cost of that key's accuracy. A key
	// costs 128 bytes, a copy of its bytes and 32 to 64 bytes of hash
	// table (a second policy on the same key another 128), so
	// DefaultMaxKeys keys of 40 bytes take 210 to 240 MiB.
	MaxKeys int
}

// MemoryStore is a Store that keeps state in this process: exact and fast,
// but not shared between instances. It is safe for concurrent use by
// multiple goroutines, and every decision on a key is atomic.
//
// Keys are spread over 256 shards. A single-policy decision on a known key
// takes no lock and allocates nothing: it finds the key in its shard's
// hash table with atomic loads, then either refuses it from the key's
// denial hint (a key held over its limit: reads only) or updates the key's
// state with a compare-and-swap. Adding or removing keys, and decisions over several
// policies at once, hold the shard's mutex (never across I/O; there is
// none).
//
// The layout keeps what every decision reads apart from what decisions
// write, one 64-byte cache line each, so that cores deciding at once do
// not take lines from each other for nothing: each shard has a line of its
// own, and so do a key's policy parameters and its state (see slot).
type MemoryStore struct {
	shards      [numShards]shard // first, so each shard's fields share a line with no other's
	clock       func() time.Time // nil: the monotonic clock
	epoch       time.Time        // the clock's reading at creation
	seed        maphash.Seed
	maxPerShard int
}

type shard struct {
	table atomic.Pointer[table] // read without the lock; changed under mu
	mu    sync.Mutex            // serialises every change to the shard
	n     int                   // entries in the table
	// idleAt is at most the earliest time at which an entry may be
	// dropped as idle (entry.last + idleGrace): a sweep before it would
	// drop nothing. TATs only grow, so it stays a lower bound; a sweep
	// makes it exact again.
	idleAt  int64
	sweepAt int      // below the bound, sweep idle keys when n reaches this (0: minSweep)
	_       [24]byte // one cache line per shard
}

// table is an open-addressing hash table with linear probing, at most half
// full. Readers probe it without locks: an entry being inserted, moved or
// removed may be missed, and a miss is always retried under the shard's
// mutex, so it only costs time.
type table struct {
	mask  uint64
	cells []atomic.Pointer[entry]
}

// entry is the state of one key: one slot per policy it is used with. The
// first slot is inline; the key, hash and slot shapes never change once
// the entry is published, only the TATs (and the denial hints) do.
//
// An entry is 128 bytes, so Go's allocator places it on two whole cache
// lines: the first holds the hash, the key and the first slot's
// parameters and denial hint, read by every decision and rarely written;
// the second holds the first slot's TAT, written by every admission.
type entry struct {
	h     uint64 // maphash of key
	key   string
	first slot
	more  atomic.Pointer[[]*slot] // further policies; replaced, never modified
	_     [48]byte
}

// slotAlone is a slot allocated on its own (a key's second policy and
// after), laid out as in an entry: 128 bytes, the TAT alone on the second
// cache line.
type slotAlone struct {
	_  [24]byte
	sl slot
	_  [56]byte
}

// slot is the GCRA state of one (key, policy), in nanoseconds since the
// store's epoch. A policy is identified by its Limit, Window and burst;
// its tolerance is interval × burst.
type slot struct {
	limit, window, burst int64
	interval             int64
	// denied is the TAT the latest denial saw, 0 once an admission has
	// moved the TAT since (or never denied). A decision reads it before
	// the TAT: until a single unit fits again, at
	// denied+interval-tolerance, no admission can move the TAT, so every
	// request with a cost is denied against that same TAT. A key held
	// over its limit is then decided by reading this read-mostly line and
	// the TAT's, writing neither, and cores denying it at once share both
	// lines instead of taking the TAT's from each other. The TAT must
	// still equal the hint: a denial stores the hint some time after it
	// read the TAT, and an admission that moved the TAT (and cleared the
	// hint) in between leaves a stale hint behind. (A slot locked or
	// dead, its TAT a sentinel, is then decided as in decideOne's loop.)
	denied atomic.Int64
	tat    atomic.Int64
}

// clearDenied drops the denial hint once the TAT has moved, writing the
// read-mostly line only if there was one.
func (sl *slot) clearDenied() {
	if sl.denied.Load() != 0 {
		sl.denied.Store(0)
	}
}

// tolerance is the slot's GCRA tolerance: how far past now its TAT may
// be after an admission.
func (sl *slot) tolerance() int64 { return sl.interval * sl.burst }

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts MemoryOptions) *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed(), maxPerShard: opts.MaxKeys / numShards}
	if opts.MaxKeys == 0 {
		s.maxPerShard = DefaultMaxKeys / numShards
	}
	s.maxPerShard = max(s.maxPerShard, 1)
	s.clock = opts.Now
	if s.clock == nil {
		s.epoch = time.Now()
	} else {
		s.epoch = s.clock()
	}
	return s
}

// nanotime reads the store's clock: nanoseconds since its epoch.
func (s *MemoryStore) nanotime() int64 {
	if s.clock == nil {
		return int64(time.Since(s.epoch)) // monotonic, one cheap read; never near maxNow
	}
	return s.sinceEpoch(s.clock())
}

// Take implements Store, reading the store's clock once. A store on the
// system clock (no MemoryOptions.Now) takes the request's arrival time
// from ctx instead when it carries one read from that clock
// (arrival.From): the chain already paid for the reading. The decision
// never blocks on I/O, and ctx is used for nothing else.
func (s *MemoryStore) Take(ctx context.Context, key string, policies []Policy, cost int) (r Result, err error) {
	now := s.nowFor(ctx)
	// The Result is filled in place: copying it back up through each call
	// level costs more than the decision itself.
	if len(policies) == 1 {
		err = s.takeOne(&r, now, key, &policies[0], cost)
		return r, err
	}
	return s.take(now, key, policies, cost)
}

// nowFor is the decision time of a Take: the arrival time in ctx for a
// store on the system clock, else a reading of the store's clock.
func (s *MemoryStore) nowFor(ctx context.Context) int64 {
	if s.clock == nil {
		if t, ok := arrival.From(ctx); ok {
			return s.sinceEpoch(t) // both monotonic readings
		}
	}
	return s.nanotime()
}

// TakeAt is Take at time now, for callers that read the clock once per
// request and share that reading between the limiter, logs and headers
// (like x/time/rate's AllowN). now should come from the same clock as
// MemoryOptions.Now (time.Now by default); a time earlier than a previous
// call's is allowed and treated as that earlier instant. That is exact for
// a time up to a second earlier than the latest call's: the store keeps a
// key's state for a second after it went idle, so a request whose
// decision runs late (a slow key lookup between its arrival and the
// limiter) still finds it. A time even earlier may find a key forgotten
// and decide it as a fresh one. A time more than about 73 years from the
// store's creation is decided as the nearest time within that range.
func (s *MemoryStore) TakeAt(now time.Time, key string, policies []Policy, cost int) (r Result, err error) {
	if len(policies) == 1 {
		err = s.takeOne(&r, s.sinceEpoch(now), key, &policies[0], cost)
		return r, err
	}
	return s.take(s.sinceEpoch(now), key, policies, cost)
}

// Len returns how many keys the store holds, idle ones included until they
// are swept. It locks every shard in turn, so it is meant for tests and
// metrics, not for the request path.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += sh.n
		sh.mu.Unlock()
	}
	return n
}

// takeOne decides a single-policy request into r: lock-free when the key
// and its slot exist, under the shard's mutex otherwise.
func (s *MemoryStore) takeOne(r *Result, now int64, key string, p *Policy, cost int) error {
	h := maphash.String(s.seed, key)
	sh := &s.shards[h&(numShards-1)]
	if e := sh.table.Load().lookup(h, key); e != nil {
		// A slot exists only for a valid policy, so only the cost is
		// left to check.
		if sl := e.slotFor(p); sl != nil && cost >= 0 && int64(cost) <= sl.burst && decideOne(r, sl, p, now, cost) {
			return nil
		}
	}
	// Off the lock-free path only: the whole check, tolerance included,
	// so that nothing below fails half way.
	if err := ValidateTake([]Policy{*p}, cost); err != nil {
		return err
	}

	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.lookup(h, key)
	if e == nil {
		if e = sh.insert(h, key, p, now, cost, s.maxPerShard); e == nil {
			return ValidateTake([]Policy{*p}, cost)
		}
	}
	sl := e.slotFor(p)
	if sl == nil {
		if sl = e.addSlot(p, now, nil); sl == nil {
			return ValidateTake([]Policy{*p}, cost)
		}
	}
	decideOne(r, sl, p, now, cost) // under mu no slot is dead or locked
	return nil
}

// decideOne is one GCRA decision on sl with a compare-and-swap loop, into
// r. It reports false when the slot is dead or locked (the caller retries
// under the shard's mutex).
func decideOne(r *Result, sl *slot, p *Policy, now int64, cost int) bool {
	tolerance := sl.tolerance()
	if d := sl.denied.Load(); cost > 0 && d != 0 && now < d+sl.interval-tolerance && sl.tat.Load() == d {
		// Denied against TAT d, still the slot's TAT (see slot.denied):
		// what the loop below would decide, reading the TAT's cache line
		// without taking it for writing. Remaining is 0, for d-now >
		// tolerance-interval.
		fill(r, p, false, 0, d+int64(cost)*sl.interval-tolerance-now, d-now)
		return true
	}
	for {
		// Add(0) reads the TAT with its cache line held for writing, so
		// that the compare-and-swap of an admission finds it in place: a
		// plain load would fetch the line shared, and the swap would
		// fetch it again, a second wait when another core wrote it last.
		// (Keys held over their limit do not get here: see above.)
		old := sl.tat.Add(0)
		if old >= tatLocked {
			return false
		}
		tat := max(old, now)
		next := tat + int64(cost)*sl.interval
		allowed := next-now <= tolerance
		if allowed && cost > 0 {
			if !sl.tat.CompareAndSwap(old, next) {
				continue // another decision got in first: decide again
			}
			tat = next
			sl.clearDenied()
		}
		if !allowed && old > now && sl.denied.Load() != old {
			sl.denied.Store(old)
		}
		var retry int64
		if !allowed {
			retry = next - tolerance - now
		}
		reset := tat - now
		fill(r, p, allowed, int(max((tolerance-reset)/sl.interval, 0)), retry, reset)
		return true
	}
}

// fill sets r to one decision under p; retryAfter and resetAfter are in
// nanoseconds.
func fill(r *Result, p *Policy, allowed bool, remaining int, retryAfter, resetAfter int64) {
	r.Allowed = allowed
	r.Limit = p.Limit
	r.Remaining = remaining
	r.RetryAfter = time.Duration(retryAfter)
	r.ResetAfter = time.Duration(resetAfter)
	r.Policy = p.name()
	r.Window = p.Window
}

// take decides a request under several policies: all of the key's slots
// are locked (with their shard's mutex held, and each slot's TAT swapped
// for tatLocked so lock-free single-policy decisions wait), decided
// together, and released with their new TATs.
func (s *MemoryStore) take(now int64, key string, policies []Policy, cost int) (Result, error) {
	// The whole check, tolerance included: a take that passes cannot fail
	// half way (an entry inserted, a later policy's slot refused), which
	// would leave the shard's idleAt above a new, idle entry.
	if err := ValidateTake(policies, cost); err != nil {
		return Result{}, err
	}
	// states[i], slots[i] and olds[i] belong to policies[i].
	var sbuf [inlineLen]GCRAState
	var pbuf [inlineLen]*slot
	var obuf [inlineLen]int64
	states, slots, olds := sbuf[:0], pbuf[:0], obuf[:0]
	if len(policies) > inlineLen {
		states = make([]GCRAState, 0, len(policies))
		slots, olds = make([]*slot, 0, len(policies)), make([]int64, 0, len(policies))
	}

	h := maphash.String(s.seed, key)
	sh := &s.shards[h&(numShards-1)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.lookup(h, key)
	if e == nil {
		if e = sh.insert(h, key, &policies[0], now, cost, s.maxPerShard); e == nil {
			return Result{}, ValidateTake(policies, cost)
		}
	}
	for i := range policies {
		sl := e.slotFor(&policies[i])
		if sl == nil {
			if sl = e.addSlot(&policies[i], now, slots); sl == nil {
				unlock(slots, olds)
				return Result{}, ValidateTake(policies, cost)
			}
		}
		old := int64(0)
		if j := indexOf(slots, sl); j >= 0 { // the same policy twice
			old = olds[j]
		} else {
			old = sl.tat.Swap(tatLocked)
		}
		slots, olds = append(slots, sl), append(olds, old)
	}

	allowed := true
	for i, sl := range slots {
		st := GCRAState{Interval: sl.interval, Tolerance: sl.tolerance(), TAT: max(olds[i], now)}
		if st.TAT+int64(cost)*st.Interval-now > st.Tolerance {
			allowed = false
		}
		states = append(states, st)
	}
	if allowed && cost > 0 {
		for i := range states {
			states[i].TAT += int64(cost) * states[i].Interval
			olds[i] = states[i].TAT
		}
		for _, sl := range slots {
			sl.clearDenied()
		}
	}
	unlock(slots, olds)
	return Describe(now, time.Nanosecond, policies, states, cost, allowed), nil
}

// unlock stores each slot's TAT (last write wins for a slot listed twice,
// and both hold the same value).
func unlock(slots []*slot, tats []int64) {
	for i, sl := range slots {
		sl.tat.Store(tats[i])
	}
}

func indexOf(slots []*slot, sl *slot) int {
	for j, x := range slots {
		if x == sl {
			return j
		}
	}
	return -1
}

// lookup finds key's entry, or nil. Safe without the shard's mutex (when
// it may miss an entry that is being moved).
func (t *table) lookup(h uint64, key string) *entry {
	if t == nil {
		return nil
	}
	for i := h >> 8 & t.mask; ; i = (i + 1) & t.mask {
		e := t.cells[i].Load()
		if e == nil || e.h == h && e.key == key {
			return e
		}
	}
}

// lookup finds key's entry under the shard's mutex.
func (sh *shard) lookup(h uint64, key string) *entry {
	return sh.table.Load().lookup(h, key)
}

// slotFor returns e's slot for p, or nil. Safe without the shard's mutex.
func (e *entry) slotFor(p *Policy) *slot {
	if e.first.matches(p) {
		return &e.first
	}
	if more := e.more.Load(); more != nil {
		for _, sl := range *more {
			if sl.matches(p) {
				return sl
			}
		}
	}
	return nil
}

func (sl *slot) matches(p *Policy) bool {
	return sl.limit == int64(p.Limit) && sl.window == int64(p.Window) && sl.burst == int64(p.Capacity())
}

// init makes sl a fresh slot for p at now; it reports false if p is
// invalid.
func (sl *slot) init(p *Policy, now int64) bool {
	interval, _, err := p.params()
	if err != nil {
		return false
	}
	sl.limit, sl.window, sl.burst = int64(p.Limit), int64(p.Window), int64(p.Capacity())
	sl.interval = interval
	sl.denied.Store(0)
	sl.tat.Store(now)
	return true
}

// addSlot adds a slot for p to e and returns it (nil if p is invalid),
// dropping the extra slots that are idle and not in keep. The shard's
// mutex is held.
func (e *entry) addSlot(p *Policy, now int64, keep []*slot) *slot {
	sl := &new(slotAlone).sl
	if !sl.init(p, now) {
		return nil
	}
	var slots []*slot
	if more := e.more.Load(); more != nil {
		for _, x := range *more {
			if indexOf(keep, x) >= 0 || !x.retire(now) {
				slots = append(slots, x)
			}
		}
	}
	slots = append(slots, sl)
	e.more.Store(&slots)
	return sl
}

// retire marks sl dead if it has been idle for idleGrace at now (a
// lock-free decision that still holds it will then retry under the
// mutex), and reports whether it did. The shard's mutex is held.
func (sl *slot) retire(now int64) bool {
	old := sl.tat.Load()
	return old <= now-idleGrace && sl.tat.CompareAndSwap(old, tatDead)
}

// retire marks every slot of e dead, if all have been idle for idleGrace
// at now or if force is set, and reports whether it did. The shard's mutex
// is held.
func (e *entry) retire(now int64, force bool) bool {
	slots := []*slot{&e.first}
	if more := e.more.Load(); more != nil {
		slots = append(slots, *more...)
	}
	olds := make([]int64, 0, len(slots))
	for _, sl := range slots {
		old := sl.tat.Swap(tatDead)
		olds = append(olds, old)
		if !force && old > now-idleGrace { // still limiting, or just stopped: put everything back
			unlock(slots[:len(olds)], olds)
			return false
		}
	}
	return true
}

// last returns the latest TAT of e's slots.
func (e *entry) last() int64 {
	t := e.first.tat.Load()
	if more := e.more.Load(); more != nil {
		for _, sl := range *more {
			t = max(t, sl.tat.Load())
		}
	}
	return t
}

// insert adds an entry for key with a first slot for p, making room first,
// and returns it (nil if p is invalid). The caller then takes cost units
// from the new entry, which admits them (a fresh key admits any cost up to
// its burst). The shard's mutex is held.
func (sh *shard) insert(h uint64, key string, p *Policy, now int64, cost, maxKeys int) *entry {
	// Clone: the key may share memory with a large request buffer.
	e := &entry{h: h, key: strings.Clone(key)}
	if !e.first.init(p, now) {
		return nil
	}
	switch {
	case sh.n >= maxKeys:
		sh.makeRoom(h, now, maxKeys)
	case sh.n >= max(sh.sweepAt, minSweep):
		if now >= sh.idleAt { // else nothing is idle yet
			sh.sweep(now)
		}
		// Sweep again only once the shard has doubled: amortised O(1).
		// (A full shard sweeps in makeRoom, whatever sweepAt says.)
		sh.sweepAt = 2 * sh.n
	}
	// The new entry is idle once the units it is about to take have
	// refilled; its other policies' slots, if any, can only delay that.
	sh.idleAt = min(sh.idleAt, now+int64(cost)*e.first.interval+idleGrace)
	t := sh.table.Load()
	if t == nil || 2*(sh.n+1) > len(t.cells) {
		t = sh.rebuild(max(minCells, 4*(sh.n+1)), nil)
	}
	i := h >> 8 & t.mask
	for t.cells[i].Load() != nil {
		i = (i + 1) & t.mask
	}
	t.cells[i].Store(e)
	sh.n++
	return e
}

// rebuild publishes a new table of the given size (a power of two at
// least minCells) holding the current entries except those drop rejects.
// The shard's mutex is held.
func (sh *shard) rebuild(size int, drop func(*entry) bool) *table {
	cells := minCells
	for cells < size {
		cells *= 2
	}
	nt := &table{mask: uint64(cells - 1), cells: make([]atomic.Pointer[entry], cells)}
	n := 0
	if old := sh.table.Load(); old != nil {
		for i := range old.cells {
			e := old.cells[i].Load()
			if e == nil || drop != nil && drop(e) {
				continue
			}
			j := e.h >> 8 & nt.mask
			for nt.cells[j].Load() != nil {
				j = (j + 1) & nt.mask
			}
			nt.cells[j].Store(e)
			n++
		}
	}
	sh.n = n
	sh.table.Store(nt)
	return nt
}

// makeRoom frees at least one place in a full shard for a new key whose
// hash is h. Idle entries go first: if any may be idle (idleAt has
// passed), the shard is swept. Only if no idle entry is left does it evict
// entries that are still limiting, one if there was no sweep; after a
// sweep that freed less than 1/headroomDiv of the bound, as many as bring
// the shard down to that, so that the next sweep of a full shard is that
// many inserts away (a sweep costs O(n)). The shard's mutex is held.
func (sh *shard) makeRoom(h uint64, now int64, maxKeys int) {
	target := maxKeys - 1
	if now >= sh.idleAt {
		sh.sweep(now)
		target = maxKeys - max(maxKeys/headroomDiv, 1)
	}
	for sh.n > target {
		if !sh.evict(h, now) {
			return
		}
		h += 0x9e3779b97f4a7c15 // sample another part of the table
	}
}

// sweep drops the entries that have been idle for idleGrace at now, and
// sets idleAt to the earliest time at which one of the others may be.
// The shard's mutex is held.
func (sh *shard) sweep(now int64) {
	n := sh.n
	next := int64(math.MaxInt64)
	t := sh.rebuild(4*n, func(e *entry) bool {
		if e.retire(now, false) {
			return true
		}
		next = min(next, e.last()+idleGrace)
		return false
	})
	sh.idleAt = next
	// Shrink the table too if most entries went.
	if 8*sh.n < len(t.cells) && len(t.cells) > minCells {
		sh.rebuild(4*sh.n, nil)
	}
}

// evict drops, among a few entries from the place in the table where the
// new key's hash h points (a random place), the one whose state becomes
// idle soonest, and reports whether there was one. The shard's mutex is
// held.
func (sh *shard) evict(h uint64, now int64) bool {
	t := sh.table.Load()
	if t == nil || sh.n == 0 {
		return false
	}
	var victim uint64
	soonest, seen := int64(0), 0
	start := h >> 8
	for k := uint64(0); k <= t.mask && seen < sampleLen; k++ {
		i := (start + k) & t.mask
		if e := t.cells[i].Load(); e != nil {
			if last := e.last(); seen == 0 || last < soonest {
				victim, soonest = i, last
			}
			seen++
		}
	}
	if seen == 0 {
		return false
	}
	t.cells[victim].Load().retire(now, true)
	sh.remove(t, victim)
	return true
}

// remove deletes the entry in cell i, shifting back the entries after it
// so that probing still finds them. The shard's mutex is held.
func (sh *shard) remove(t *table, i uint64) {
	t.cells[i].Store(nil)
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		e := t.cells[j].Load()
		if e == nil {
			break
		}
		home := e.h >> 8 & t.mask
		// Move e into the hole if its home is not in (i, j] cyclically.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.cells[i].Store(e)
			t.cells[j].Store(nil)
			i = j
		}
	}
	sh.n--
}
