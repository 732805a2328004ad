package auth_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/auth"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// fakeStore is an in-memory auth.KeyStore that counts lookups.
type fakeStore struct {
	lookups atomic.Int64

	mu      sync.Mutex
	keys    map[[32]byte]auth.KeyRecord
	fail    error                  // returned by every call when set
	touches []map[string]time.Time // one entry per TouchKeys call
}

func newFakeStore() *fakeStore {
	return &fakeStore{keys: make(map[[32]byte]auth.KeyRecord)}
}

func (s *fakeStore) add(secret string, r auth.KeyRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[auth.Hash(secret)] = r
}

func (s *fakeStore) update(secret string, f func(*auth.KeyRecord)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.keys[auth.Hash(secret)]
	f(&r)
	s.keys[auth.Hash(secret)] = r
}

func (s *fakeStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *fakeStore) LookupKeyByHash(_ context.Context, h [32]byte) (auth.KeyRecord, error) {
	s.lookups.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return auth.KeyRecord{}, s.fail
	}
	r, ok := s.keys[h]
	if !ok {
		return auth.KeyRecord{}, errUnknownWrapped
	}
	return r, nil
}

// errUnknownWrapped checks that the Verifier uses errors.Is, not ==.
var errUnknownWrapped = errors.Join(errors.New("fake: no such key"), auth.ErrUnknown)

func (s *fakeStore) TouchKeys(_ context.Context, used map[string]time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.touches = append(s.touches, maps.Clone(used))
	return nil
}

func (s *fakeStore) touchCalls() []map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]time.Time(nil), s.touches...)
}

// lastTouch returns the latest last-use of key id in every TouchKeys
// call so far (zero if none).
func (s *fakeStore) lastTouch(id string) time.Time {
	var last time.Time
	for _, c := range s.touchCalls() {
		if c[id].After(last) {
			last = c[id]
		}
	}
	return last
}

// newClock returns a settable clock for the verifier.
func newClock() *testenv.Clock { return testenv.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }
