package tsdb

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// hashSet against a map: hashes read in order at open, then added in any order with repeats,
// through several merges; every hash added is found, no other is.
func TestHashSet(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s hashSet
	model := map[uint64]struct{}{}
	// Open: ascending, with repeats (hash collisions give one key per ref).
	opened := make([]uint64, 5000)
	for i := range opened {
		opened[i] = rng.Uint64() >> 1
	}
	slices.Sort(opened)
	for i, h := range opened {
		s.appendSorted(h)
		if i%10 == 0 {
			s.appendSorted(h)
		}
		model[h] = struct{}{}
	}
	// New series, some of them already stored, some twice.
	for i := range 20_000 {
		h := rng.Uint64()
		if i%7 == 0 {
			h = opened[rng.IntN(len(opened))]
		}
		s.add(h)
		if i%5 == 0 {
			s.add(h)
		}
		model[h] = struct{}{}
		if i%997 == 0 && !s.has(h) {
			t.Fatalf("hash %x missing right after add", h)
		}
	}
	if s.len() != len(model) {
		t.Errorf("set holds %d hashes, want %d", s.len(), len(model))
	}
	for h := range model {
		if !s.has(h) {
			t.Fatalf("hash %x added, not found", h)
		}
	}
	for range 20_000 {
		h := rng.Uint64()
		if _, in := model[h]; !in && s.has(h) {
			t.Fatalf("hash %x never added, found", h)
		}
	}
	if !slices.IsSorted(s.sorted) || len(s.recent) > max(minRecent, len(s.sorted)/8) {
		t.Errorf("sorted %v, %d recent for %d sorted", slices.IsSorted(s.sorted), len(s.recent), len(s.sorted))
	}
	// An out-of-order appendSorted stays correct.
	s.appendSorted(1)
	if !s.has(1) {
		t.Error("hash 1 appended out of order, not found")
	}
}
