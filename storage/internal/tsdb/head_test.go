package tsdb

import (
	"testing"
	"unsafe"
)

// TestMemSeriesSize guards the layout of memSeries: it is allocated once per active series, so
// its size class is the head's bytes per series (see the comment on its fields).
func TestMemSeriesSize(t *testing.T) {
	if got := unsafe.Sizeof(memSeries{}); got > 192 {
		t.Errorf("memSeries is %d bytes, more than the 192 of its size class: reorder its fields or move rarely used state out", got)
	}
	if got := unsafe.Sizeof(chunkBuilder{}); got > 64 {
		t.Errorf("chunkBuilder is %d bytes, more than 64", got)
	}
}
