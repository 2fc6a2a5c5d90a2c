package tsdb

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestStepGridSkip walks random sample times as seriesIterator.Next does with a grid, and
// checks that every step still finds the newest sample at or before it among those returned.
func TestStepGridSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 2000 {
		n := 1 + rng.IntN(60)
		ts := make([]int64, n)
		at := rng.Int64N(1000) - 500
		for i := range ts {
			at += 1 + rng.Int64N(40)
			ts[i] = at
		}
		start := ts[0] + rng.Int64N(200) - 100
		g := stepGrid{start: start, step: 1 + rng.Int64N(90), at: start}
		kept := map[int64]bool{ts[0]: true} // the first sample comes from open, not from Next
		for i := 0; i+1 < n; {
			i = g.skip(ts, i+1)
			kept[ts[i]] = true
		}
		require.True(t, kept[ts[n-1]], "round %d: the last sample was left out", round)
		for step := g.start; step <= ts[n-1]+g.step; step += g.step {
			newest, newestKept := int64(0), int64(0)
			found, foundKept := false, false
			for _, x := range ts {
				if x <= step {
					newest, found = x, true
					if kept[x] {
						newestKept, foundKept = x, true
					}
				}
			}
			require.Equal(t, found, foundKept, "round %d, step %d", round, step)
			require.Equal(t, newest, newestKept, "round %d, step %d: times %v, grid %+v, kept %v", round, step, ts, g, kept)
		}
	}
}

// TestSelectWithStepGrid: a Select whose hints say the grid in its context returns only the
// samples the steps read (here one in four); other hints, or no grid, return them all.
func TestSelectWithStepGrid(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	require.NoError(t, err)
	defer db.Close()
	const n = 400 // 15 s apart: 100 minutes
	app := db.AppenderV2(context.Background())
	for i := range int64(n) {
		_, err := app.Append(0, labels.FromStrings("__name__", "x"), 0, i*15_000, float64(i), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	db.Close() // reopened: the samples come from stored chunks as well as the head
	db, err = Open(db.dir, Options{})
	require.NoError(t, err)
	defer db.Close()

	grid := StepGrid{Start: 600_000, End: 5_400_000, Step: 60_000, Lookback: 300_000}
	count := func(ctx context.Context, hints *storage.SelectHints) (int, []int64) {
		q, err := db.Querier(hints.Start, hints.End)
		require.NoError(t, err)
		defer q.Close()
		ss := q.Select(ctx, false, hints, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
		var got []int64
		for ss.Next() {
			it := ss.At().Iterator(nil)
			for it.Next() != chunkenc.ValNone {
				got = append(got, it.AtT())
			}
			require.NoError(t, it.Err())
		}
		require.NoError(t, ss.Err())
		return len(got), got
	}
	hints := &storage.SelectHints{Start: grid.Start - grid.Lookback + 1, End: grid.End, Step: grid.Step}
	all, _ := count(context.Background(), hints)
	require.Equal(t, (5_400_000-315_000)/15_000+1, all) // from the first sample after Start-Lookback
	thinned, times := count(WithStepGrid(context.Background(), grid), hints)
	require.Less(t, thinned, all/3, "with the grid: %v", times)
	for step := grid.Start; step <= grid.End; step += grid.Step {
		require.Contains(t, times, step/15_000*15_000, "the sample step %d reads", step)
	}
	// A grid beyond maxGridTime is not taken: its differences could overflow.
	far := StepGrid{Start: -maxGridTime - 1, End: grid.End, Step: grid.Step, Lookback: grid.Lookback}
	farHints := &storage.SelectHints{Start: far.Start - far.Lookback + 1, End: far.End, Step: far.Step}
	got, _ := count(WithStepGrid(context.Background(), far), farHints)
	want, _ := count(context.Background(), farHints)
	require.Equal(t, want, got)
	for _, other := range []*storage.SelectHints{
		{Start: hints.Start - 60_000, End: hints.End - 60_000, Step: grid.Step}, // offset 1m
		{Start: hints.Start, End: hints.End, Step: grid.Step, Range: 60_000},
		{Start: hints.Start, End: hints.End, Step: 30_000},
		{Start: hints.Start, End: hints.End, Step: grid.Step, DisableTrimming: true},
	} {
		got, _ := count(WithStepGrid(context.Background(), grid), other)
		want, _ := count(context.Background(), other)
		require.Equal(t, want, got, "hints %+v", other)
	}
}
