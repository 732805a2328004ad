package ratelimit

import (
	"testing"
	"unsafe"
)

// TestMemoryLayout pins the cache-line layout that MemoryStore's speed
// under parallel load rests on (see MemoryStore, entry and slot): a field
// added in the wrong place puts a written word back on a line that every
// decision reads, and nothing else would notice.
func TestMemoryLayout(t *testing.T) {
	var (
		e entry
		a slotAlone
		s MemoryStore
	)
	tests := []struct {
		name      string
		got, want uintptr
	}{
		{"entry size", unsafe.Sizeof(e), 128},
		{"entry: first slot's TAT starts the second line", unsafe.Offsetof(e.first) + unsafe.Offsetof(e.first.tat), 64},
		{"entry: first slot's denial hint ends the first line", unsafe.Offsetof(e.first) + unsafe.Offsetof(e.first.denied), 56},
		{"slotAlone size", unsafe.Sizeof(a), 128},
		{"slotAlone: TAT starts the second line", unsafe.Offsetof(a.sl) + unsafe.Offsetof(a.sl.tat), 64},
		{"slotAlone: denial hint ends the first line", unsafe.Offsetof(a.sl) + unsafe.Offsetof(a.sl.denied), 56},
		{"shard size", unsafe.Sizeof(shard{}), 64},
		{"MemoryStore: shards first", unsafe.Offsetof(s.shards), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %d, want %d", tt.got, tt.want)
			}
		})
	}
	// The layout only helps if the allocator puts these objects on line
	// boundaries, as it does for its 128-byte size class. The store is
	// larger than 512 bytes and holds pointers, so its allocation starts
	// with the allocator's 8-byte header; each shard's live fields (the
	// padding aside) must still fall within one line.
	t.Run("allocations are line-aligned", func(t *testing.T) {
		for i := range 64 {
			for name, p := range map[string]unsafe.Pointer{
				"entry":     unsafe.Pointer(new(entry)),
				"slotAlone": unsafe.Pointer(new(slotAlone)),
			} {
				if off := uintptr(p) % 64; off != 0 {
					t.Fatalf("allocation %d of %s is %d bytes into a cache line", i, name, off)
				}
			}
			st := NewMemoryStore(MemoryOptions{})
			for j := range st.shards {
				sh := &st.shards[j]
				first, last := uintptr(unsafe.Pointer(&sh.table)), uintptr(unsafe.Pointer(&sh.sweepAt))+unsafe.Sizeof(sh.sweepAt)-1
				if first/64 != last/64 {
					t.Fatalf("store %d: shard %d's fields span bytes %d to %d of a cache line", i, j, first%64, first%64+last-first)
				}
			}
		}
	})
}
