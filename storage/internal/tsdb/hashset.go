package tsdb

import "slices"

// hashSet is a set of label hashes that costs about 8 bytes per hash instead of a Go map's 40
// or so: a sorted slice, and a map of the hashes added since it was last rebuilt, merged into
// it once the map holds an eighth as many. The registry keeps one per stripe for every series
// ever stored, active or not, so it grows with the series on disk (churn included), not with
// the active ones. The zero value is an empty set; it is not safe for concurrent use.
type hashSet struct {
	sorted []uint64 // ascending, no duplicates
	recent map[uint64]struct{}
}

// minRecent is how many hashes recent holds at least before a merge, so that small sets are not
// rebuilt on every insert.
const minRecent = 256

func (s *hashSet) has(h uint64) bool {
	if _, ok := s.recent[h]; ok {
		return true
	}
	_, ok := slices.BinarySearch(s.sorted, h)
	return ok
}

func (s *hashSet) add(h uint64) {
	if s.has(h) {
		return
	}
	if s.recent == nil {
		s.recent = map[uint64]struct{}{}
	}
	s.recent[h] = struct{}{}
	if len(s.recent) > max(minRecent, len(s.sorted)/8) {
		s.merge()
	}
}

// appendSorted adds h, which is not below any hash added so far (Open reads the h family in
// key order); a hash equal to the last one is skipped.
func (s *hashSet) appendSorted(h uint64) {
	if n := len(s.sorted); n > 0 && s.sorted[n-1] >= h {
		if s.sorted[n-1] == h {
			return
		}
		s.add(h) // out of order: not what Open reads, but kept correct
		return
	}
	s.sorted = append(s.sorted, h)
}

// merge moves recent into sorted, in a slice of the exact size.
func (s *hashSet) merge() {
	add := make([]uint64, 0, len(s.recent))
	for h := range s.recent {
		add = append(add, h)
	}
	slices.Sort(add)
	merged := make([]uint64, 0, len(s.sorted)+len(add))
	i, j := 0, 0
	for i < len(s.sorted) && j < len(add) {
		if s.sorted[i] < add[j] {
			merged = append(merged, s.sorted[i])
			i++
		} else {
			merged = append(merged, add[j])
			j++
		}
	}
	merged = append(merged, s.sorted[i:]...)
	merged = append(merged, add[j:]...)
	s.sorted, s.recent = merged, nil
}

// len is the number of hashes in the set.
func (s *hashSet) len() int { return len(s.sorted) + len(s.recent) }
