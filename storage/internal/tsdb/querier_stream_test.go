package tsdb

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// streamFixture stores more series than several Select batches, over three one-hour
// partitions, with label order opposite to ref order for half of them (so a sorted Select
// visits refs out of order across batches), series that have no data in parts of the range
// (skipped inside batches), some heads checkpointed by a reopen and some dirty.
func streamFixture(t *testing.T) (*DB, *refModel) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour})
	m := newModel()
	n := 3*selectBatch + 17
	lsetOf := func(i int) labels.Labels {
		name := fmt.Sprintf("s%04d", i)
		if i%2 == 1 {
			name = fmt.Sprintf("r%04d", n-i) // descending with the ref
		}
		return lbls("__name__", name, "job", fmt.Sprint("j", i%3))
	}
	// Series i has samples every 30s over a window that depends on i: the whole span, only
	// the first hour, or only the last 40 minutes.
	window := func(i int) (int64, int64) {
		switch i % 5 {
		case 0:
			return 0, hourMs - 1
		case 1:
			return 2*hourMs + 20*minMs, 3*hourMs - 1
		}
		return 0, 3*hourMs - 1
	}
	add := func(from, to int64) {
		for i := range n {
			lo, hi := window(i)
			batch := trim(floatRange(0, 3*hourMs-1, 30_000), max(lo, from), min(hi, to))
			for k := range batch {
				batch[k].F = float64(i*1000) + float64(batch[k].T)/1000
			}
			if len(batch) == 0 {
				continue
			}
			mustAppend(t, db, lsetOf(i), batch...)
			for _, s := range batch {
				m.add(lsetOf(i), s)
			}
		}
	}
	add(0, 2*hourMs+30*minMs)
	db = reopen(t, db, fs) // the heads so far are checkpointed into Pebble
	add(2*hourMs+30*minMs+1, 3*hourMs-1)
	return db, m
}

func TestSelectStreamsInBatches(t *testing.T) {
	db, m := streamFixture(t)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for _, r := range [][2]int64{
		{0, 3 * hourMs},
		{30 * minMs, 2*hourMs + 10*minMs}, // series of the first two kinds drop out
		{2*hourMs + 25*minMs, 2*hourMs + 35*minMs},
		{hourMs + 30_000, hourMs + 30_000}, // one sample
	} {
		want := m.query(r[0], r[1], all)
		requireSameSeries(t, want, selectStrict(t, db, r[0], r[1], nil, all), "sorted ", r)

		// Unsorted, and expanded before any iterator is used, as Prometheus's engine does:
		// the series of earlier batches must stay readable once later ones are read and the
		// set has released its snapshot.
		q, err := db.Querier(r[0], r[1])
		require.NoError(t, err)
		ss := q.Select(context.Background(), false, nil, all)
		var series []storage.Series
		for ss.Next() {
			series = append(series, ss.At())
		}
		require.NoError(t, ss.Err())
		got := map[string][]smp{}
		for _, s := range series {
			got[s.Labels().String()] = readIter(t, s.Iterator(nil))
		}
		require.NoError(t, q.Close())
		requireSameSeries(t, want, got, "unsorted ", r)

		// The "series" hint: the same series, no chunk bytes.
		q, err = db.Querier(r[0], r[1])
		require.NoError(t, err)
		ss = q.Select(context.Background(), true, &storage.SelectHints{Start: r[0], End: r[1], Func: "series"}, all)
		var names []string
		for ss.Next() {
			names = append(names, ss.At().Labels().String())
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
		require.Equal(t, keys(want), keys(func() map[string][]smp {
			out := map[string][]smp{}
			for _, k := range names {
				out[k] = nil
			}
			return out
		}()))
	}
}

// A Select sees the data as of the Select, even when chunks are read after later commits cut
// new chunks and checkpoints rewrite the heads.
func TestSelectStreamSnapshotAtSelect(t *testing.T) {
	db, m := streamFixture(t)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	want := m.query(0, 4*hourMs, all)

	q, err := db.Querier(0, 4*hourMs)
	require.NoError(t, err)
	ss := q.Select(context.Background(), true, nil, all)
	// Commits after the Select: more than a chunk per series, then a checkpoint.
	for _, ls := range m.lsets {
		mustAppend(t, db, ls, floatRange(3*hourMs, 3*hourMs+150*30_000, 30_000)...)
	}
	db.writeMu.Lock()
	require.NoError(t, db.checkpointLocked(headsQuick))
	db.writeMu.Unlock()

	got := map[string][]smp{}
	for ss.Next() {
		got[ss.At().Labels().String()] = readIter(t, ss.At().Iterator(nil))
	}
	require.NoError(t, ss.Err())
	require.NoError(t, q.Close())
	requireSameSeries(t, want, got)
}

// A set abandoned part way, one never iterated, and one whose context is cancelled all
// release their snapshot and iterators with the querier: Pebble's Close reports leaks.
func TestSelectStreamCloseAndCancel(t *testing.T) {
	db, _ := streamFixture(t)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	q, err := db.Querier(0, 3*hourMs)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() }) // before the DB's Close, which waits for queriers
	ss := q.Select(context.Background(), false, nil, all)
	require.True(t, ss.Next())
	_ = q.Select(context.Background(), true, nil, all)

	ctx, cancel := context.WithCancel(context.Background())
	ss2 := q.Select(ctx, false, nil, all)
	require.True(t, ss2.Next())
	cancel()
	n := 1
	for ss2.Next() {
		n++
	}
	require.ErrorIs(t, ss2.Err(), context.Canceled)
	require.LessOrEqual(t, n, selectBatch, "the cancellation is seen at the next batch")
	require.NoError(t, q.Close())
	require.NoError(t, q.Close())
	require.NoError(t, db.Close())
}
