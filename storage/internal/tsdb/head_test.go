package tsdb

import (
	"strconv"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// TestMemSeriesSize guards the layout of memSeries: it is allocated once per active series, so
// its size class is the head's bytes per series (see the comment on its fields).
func TestMemSeriesSize(t *testing.T) {
	if got := unsafe.Sizeof(memSeries{}); got > 224 {
		t.Errorf("memSeries is %d bytes, more than the 224 of its size class: reorder its fields or move rarely used state out", got)
	}
	if got := unsafe.Sizeof(chunkBuilder{}); got > 104 {
		t.Errorf("chunkBuilder is %d bytes, more than 104 (its stream chunk, 64, included)", got)
	}
}

// Label sets whose hashes collide share a hash in the stripe: each is found, and removing one,
// the first included, leaves the others found.
func TestHashStripeCollisions(t *testing.T) {
	st := hashStripe{m: map[uint64]*memSeries{}}
	const h = 42
	var series []*memSeries
	for i := range 4 {
		s := &memSeries{ref: uint64(i + 1), lset: labels.FromStrings("__name__", "m", "i", strconv.Itoa(i))}
		if st.find(h, s.lset) != nil {
			t.Fatalf("series %d found before it was added", i)
		}
		st.add(h, s)
		series = append(series, s)
	}
	other := &memSeries{ref: 9, lset: labels.FromStrings("__name__", "other")}
	st.add(7, other)
	check := func(removed map[int]bool) {
		t.Helper()
		for i, s := range series {
			got := st.find(h, s.lset)
			if removed[i] && got != nil {
				t.Errorf("series %d found after its removal", i)
			}
			if !removed[i] && got != s {
				t.Errorf("series %d: found %v", i, got)
			}
		}
		if st.find(7, other.lset) != other || st.find(7, series[0].lset) != nil {
			t.Error("the series of another hash is not found as it should be")
		}
	}
	check(nil)
	st.remove(h, series[0]) // the one in m: the next takes its place
	check(map[int]bool{0: true})
	st.remove(h, series[2]) // one among the collisions
	check(map[int]bool{0: true, 2: true})
	st.remove(h, series[1])
	st.remove(h, series[3])
	check(map[int]bool{0: true, 1: true, 2: true, 3: true})
	if len(st.m) != 1 || len(st.collisions) != 0 {
		t.Errorf("after removing every series of the hash: %d in m, %d hashes with collisions", len(st.m), len(st.collisions))
	}
}
