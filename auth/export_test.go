package auth

import "time"

// CacheLen returns the number of cached hashes, for tests.
func (v *Verifier) CacheLen() int {
	n := 0
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// Checksum exposes the string CRC-32 for tests.
var Checksum = checksum

// ForgetThenTouch takes the cached entry of hash h, lets Forget remove it,
// then records a use at now on it: the interleaving of a request that read
// the entry just before a revocation and records its use after. It
// reports false when h is not cached.
func (v *Verifier) ForgetThenTouch(h [32]byte, now time.Time) bool {
	sh := &v.shards[h[0]%numShards]
	sh.mu.RLock()
	e := sh.m[h]
	sh.mu.RUnlock()
	if e == nil {
		return false
	}
	v.Forget(h)
	v.touch(e, now)
	return true
}
