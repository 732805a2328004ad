package auth

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
