package tsdb

import (
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// storedChunkInfo is a chunk key as the merge tests see it.
type storedChunkInfo struct {
	mint    int64
	samples int
}

// chunkLayout lists the stored chunks of every series: partition, ref, then mint order.
func chunkLayout(t testing.TB, db *DB) map[uint64][]storedChunkInfo {
	t.Helper()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{famChunks}, UpperBound: []byte{famChunks + 1}})
	require.NoError(t, err)
	defer it.Close()
	out := map[uint64][]storedChunkInfo{}
	for it.First(); it.Valid(); it.Next() {
		_, ref, mint, err := parseChunkKey(it.Key())
		require.NoError(t, err)
		c, err := decodeChunkValue(mint, it.Value(), true)
		require.NoError(t, err)
		smps, err := c.samples(nil)
		require.NoError(t, err)
		require.Equal(t, mint, smps[0].t, "a chunk's key names its first sample")
		out[ref] = append(out[ref], storedChunkInfo{mint: mint, samples: len(smps)})
	}
	require.NoError(t, it.Error())
	return out
}

// mergeDayStart is midnight: partitions (24 h) and merge windows (2 h) start there.
var mergeDayStart = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

const mergeStep = 15_000

// mergeSamples returns n samples 15 s apart from mergeDayStart+from: short decimals (stored
// packed) when decimal, square roots (stored XOR2) otherwise.
func mergeSamples(from int64, n int, decimal bool) []smp {
	out := make([]smp, n)
	for i := range out {
		ts := mergeDayStart + from + int64(i)*mergeStep
		v := float64(ts%1_000_000) / 100
		if !decimal {
			v = math.Sqrt(float64(ts))
		}
		out[i] = smp{T: ts, F: v}
	}
	return out
}

// appendInCommits appends the samples of each series in commits of per samples, in time order.
func appendInCommits(t testing.TB, db *DB, per int, series map[string][]smp) {
	t.Helper()
	n := 0
	for _, s := range series {
		n = max(n, len(s))
	}
	for i := 0; i < n; i += per {
		for name, s := range series {
			if i < len(s) {
				mustAppend(t, db, lbls("__name__", name), s[i:min(i+per, len(s))]...)
			}
		}
	}
}

func TestMergeClosedChunks(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: 24 * time.Hour})
	const perWindow = 2 * 3600 * 1000 / mergeStep // 480
	want := map[string][]smp{
		"decimal": mergeSamples(0, 5*perWindow/2, true), // 5 h: windows 0-2 h and 2-4 h close
		"xor":     mergeSamples(0, 5*perWindow/2, false),
	}
	appendInCommits(t, db, 40, want)
	db.mergeQueued()

	check := func(db *DB, what string) {
		t.Helper()
		got := selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		require.Len(t, got, 2, what)
		for name, s := range want {
			requireSamples(t, s, got[labels.FromStrings("__name__", name).String()], what, " ", name)
		}
	}
	check(db, "after merging")
	layout := chunkLayout(t, db)
	require.Len(t, layout, 2)
	for ref, chunks := range layout {
		// Each closed window is one chunk of its 480 samples; the window holding the head keeps
		// its cut chunk of 120 (the head itself is only in the sample log until a checkpoint).
		require.Equal(t, []storedChunkInfo{
			{mint: mergeDayStart, samples: perWindow},
			{mint: mergeDayStart + 2*3600*1000, samples: perWindow},
			{mint: mergeDayStart + 4*3600*1000, samples: samplesPerChunk},
		}, chunks, "series %d", ref)
	}
	require.EqualValues(t, 2*2*3, db.stats.ChunksMerged.Load(), "chunks merged away: 3 per closed window and series")

	// A restart keeps the merged chunks; the head comes back from its checkpointed copy and the
	// window it is in closes and merges when appends move on.
	db = reopen(t, db, fs)
	check(db, "after a restart")
	more := map[string][]smp{
		"decimal": mergeSamples(int64(len(want["decimal"]))*mergeStep, perWindow, true),
		"xor":     mergeSamples(int64(len(want["xor"]))*mergeStep, perWindow, false),
	}
	appendInCommits(t, db, 40, more)
	for name := range want {
		want[name] = append(want[name], more[name]...)
	}
	db.mergeQueued()
	check(db, "after appending past the next window")
	for ref, chunks := range chunkLayout(t, db) {
		require.Len(t, chunks, 4, "series %d: %v", ref, chunks)
		require.Equal(t, storedChunkInfo{mint: mergeDayStart + 4*3600*1000, samples: perWindow}, chunks[2], "series %d: the window of the head at the restart", ref)
	}
	db = reopen(t, db, fs)
	check(db, "after a second restart")
}

// A chunk rewritten between the plan and its application (here by an out-of-order sample) is not
// replaced by the stale merge; a later pass merges what is there then.
func TestMergeLeavesChangedChunks(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: 24 * time.Hour, OutOfOrderWindow: 24 * time.Hour})
	s := mergeSamples(0, 600, true)
	db.mergeMu.Lock() // keep the background loop out
	appendInCommits(t, db, 50, map[string][]smp{"m": s})
	db.writeMu.Lock()
	q := db.mergeQ
	db.mergeQ = nil
	db.writeMu.Unlock()
	require.Len(t, q, 1, "one window closed")
	plans, err := db.planMerges(q)
	require.NoError(t, err)
	require.Len(t, plans, 1)
	require.Len(t, plans[0].keys, 4)

	late := smp{T: mergeDayStart + 7_500, F: 1.5} // inside the first chunk
	mustAppend(t, db, lbls("__name__", "m"), late)
	require.NoError(t, db.applyMerges(plans))
	require.Zero(t, db.stats.ChunksMerged.Load(), "the stale plan was applied")
	want := append([]smp{s[0], late}, s[1:]...)
	got := selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, eq("__name__", "m"))
	requireSamples(t, want, got[`{__name__="m"}`])

	require.NoError(t, db.mergeWindows(q))
	db.mergeMu.Unlock()
	got = selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, eq("__name__", "m"))
	requireSamples(t, want, got[`{__name__="m"}`])
	for _, chunks := range chunkLayout(t, db) {
		require.Equal(t, storedChunkInfo{mint: mergeDayStart, samples: 481}, chunks[0], "%v", chunks)
	}
	require.EqualValues(t, 4, db.stats.ChunksMerged.Load(), "the 121 samples of the first chunk were cut in two by the out-of-order merge")
}

// The head's stored copy is never merged, even when its window is named: it is appended to
// again and rewritten under its key.
func TestMergeNeverTakesTheHead(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: 24 * time.Hour})
	s := mergeSamples(0, 300, true) // 75 minutes: all in the first window
	appendInCommits(t, db, 30, map[string][]smp{"m": s})
	db.writeMu.Lock()
	require.NoError(t, db.checkpointLocked(headsQuick))
	require.Empty(t, db.mergeQ, "no window closed")
	db.writeMu.Unlock()
	layout := chunkLayout(t, db)
	require.Len(t, layout, 1)
	var ref uint64
	for r := range layout {
		ref = r
	}
	require.Len(t, layout[ref], 3, "two cut chunks and the head")

	require.NoError(t, db.mergeWindows([]mergeWindow{{ref: ref, part: db.partition(mergeDayStart), from: mergeDayStart}}))
	require.Equal(t, []storedChunkInfo{
		{mint: mergeDayStart, samples: 2 * samplesPerChunk},
		{mint: s[2*samplesPerChunk].T, samples: 60},
	}, chunkLayout(t, db)[ref])

	more := mergeSamples(300*mergeStep, 100, true)
	mustAppend(t, db, lbls("__name__", "m"), more...)
	want := append(s, more...)
	got := selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, eq("__name__", "m"))
	requireSamples(t, want, got[`{__name__="m"}`])
	db = reopen(t, db, fs)
	got = selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, eq("__name__", "m"))
	requireSamples(t, want, got[`{__name__="m"}`], "after a restart")
}

// Close merges the windows still queued, so that a backfill followed by a stop ends merged.
func TestMergeAtClose(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: 24 * time.Hour, mergeOnlyAtClose: true})
	want := mergeSamples(0, 1000, true) // windows 0-2 h and 2-4 h close
	appendInCommits(t, db, 100, map[string][]smp{"m": want})
	for _, chunks := range chunkLayout(t, db) {
		require.Len(t, chunks, 8, "nothing merged before the close")
	}
	db = reopen(t, db, fs)
	for _, chunks := range chunkLayout(t, db) {
		require.Equal(t, []storedChunkInfo{
			{mint: mergeDayStart, samples: 480},
			{mint: mergeDayStart + 2*3600*1000, samples: 480},
			{mint: mergeDayStart + 4*3600*1000, samples: 40}, // the head, written by the close
		}, chunks)
	}
	requireSamples(t, want, selectStrict(t, db, math.MinInt64, math.MaxInt64, nil, eq("__name__", "m"))[`{__name__="m"}`])
}
