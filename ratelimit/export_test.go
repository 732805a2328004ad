package ratelimit

import "hash/maphash"

// NumShards is how many shards a MemoryStore spreads its keys over.
const NumShards = numShards

// ShardOf returns the index of the shard of s that holds key, for tests
// that fill one shard.
func ShardOf(s *MemoryStore, key string) int {
	return int(maphash.String(s.seed, key) & (numShards - 1))
}
