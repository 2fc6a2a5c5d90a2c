package tsdb

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRefIndex(t *testing.T) {
	var x refIndex
	require.Nil(t, x.get(1))
	series := map[uint64]*memSeries{}
	for _, ref := range []uint64{1, 2, refPageSize - 1, refPageSize, 5*refPageSize + 7} {
		s := &memSeries{ref: ref}
		series[ref] = s
		x.add(s)
	}
	require.Equal(t, 5, x.count())
	for ref, s := range series {
		require.Same(t, s, x.get(ref))
	}
	require.Nil(t, x.get(3))
	require.Nil(t, x.get(100*refPageSize), "past the last page")

	// Replacing a ref's series keeps the count.
	repl := &memSeries{ref: 2}
	x.add(repl)
	require.Equal(t, 5, x.count())
	x.remove(series[2]) // no longer registered: nothing happens
	require.Same(t, repl, x.get(2))
	series[2] = repl

	seen := map[uint64]bool{}
	x.each(func(s *memSeries) { seen[s.ref] = true })
	require.Len(t, seen, 5)

	// The last series of a page drops the page; the others stay.
	x.remove(series[5*refPageSize+7])
	require.Nil(t, x.get(5*refPageSize+7))
	require.Nil(t, (*x.dir.Load())[5], "an empty page is dropped")
	x.remove(series[1])
	require.NotNil(t, (*x.dir.Load())[0], "page 0 still holds refs 2 and 4095")
	require.Equal(t, 3, x.count())
}

// Lookups run without locks beside adds and removes (go test -race checks the accesses).
func TestRefIndexConcurrent(t *testing.T) {
	var x refIndex
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ref := uint64(1); ref < 3*refPageSize; ref++ {
			s := &memSeries{ref: ref}
			x.add(s)
			if ref%3 == 0 {
				x.remove(s)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 3 {
			for ref := uint64(1); ref < 3*refPageSize; ref++ {
				if s := x.get(ref); s != nil {
					require.Equal(t, ref, s.ref)
				}
			}
			x.each(func(*memSeries) {})
		}
	}()
	wg.Wait()
	require.Equal(t, 3*refPageSize-1-(3*refPageSize-1)/3, x.count())
}
