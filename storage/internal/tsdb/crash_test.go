package tsdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

var allSeries = labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")

// openClone opens a crash clone; the DB is closed at the end of the test.
func openClone(t testing.TB, fs *vfs.MemFS, o Options) *DB {
	t.Helper()
	return openOn(t, fs, o)
}

// crashMode is a kind of crash the tests simulate with crash clones of a vfs.MemFS.
type crashMode struct {
	name string
	// sync is Options.SyncCommits.
	sync bool
	// clone returns the clone's config: how much data that was written but not synced survives.
	clone func(rng *rand.Rand) vfs.CrashCloneCfg
}

var crashModes = []crashMode{
	// The process dies (kill -9): everything it wrote survives, what it still buffered does
	// not. The default durability (SyncCommits off) guarantees every acknowledged commit.
	{name: "process", sync: false, clone: func(rng *rand.Rand) vfs.CrashCloneCfg {
		return vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(rng.Uint64(), 3))}
	}},
	// The machine loses power: any part of the unsynced data may be lost. With SyncCommits
	// every acknowledged commit survives that too.
	{name: "power-loss", sync: true, clone: func(rng *rand.Rand) vfs.CrashCloneCfg {
		return vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 1))}
	}},
}

func forEachCrashMode(t *testing.T, f func(t *testing.T, mode crashMode)) {
	for _, mode := range crashModes {
		t.Run(mode.name, func(t *testing.T) { f(t, mode) })
	}
}

// Every sample whose Commit returned is in a crash clone taken right after.
func TestCrashAfterCommit(t *testing.T) { forEachCrashMode(t, testCrashAfterCommit) }

func testCrashAfterCommit(t *testing.T, mode crashMode) {
	fs := vfs.NewCrashableMem()
	opts := Options{PartitionDuration: time.Hour, OutOfOrderWindow: time.Hour, SyncCommits: mode.sync}
	db := openOn(t, fs, opts)
	m := newModel()
	rng := rand.New(rand.NewPCG(11, 12))
	for i := range 40 {
		app := db.AppenderV2(context.Background())
		for range 50 {
			ls := lbls("__name__", fmt.Sprint("s", rng.IntN(4)))
			tt := int64(i)*minMs + rng.Int64N(10*minMs) // overlaps earlier commits: out of order
			s := smp{T: tt, F: float64(rng.IntN(1000))}
			if err := appendSmp(app, ls, s, storage.AppendV2Options{}); err == nil {
				m.add(ls, s)
			} else {
				require.ErrorIs(t, err, storage.ErrDuplicateSampleForTimestamp)
			}
		}
		require.NoError(t, app.Commit())
		if i%8 == 7 {
			clone := fs.CrashClone(mode.clone(rng))
			cdb := openClone(t, clone, opts)
			requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries), "clone after commit ", i)
			require.Equal(t, db.MaxTime(), cdb.MaxTime())
			require.NoError(t, cdb.Close())
		}
	}
	require.Positive(t, db.Stats().SamplesOutOfOrder.Load())
}

// Crash clones taken while a writer commits hold a prefix of the commits: at least those
// acknowledged before the clone, exactly as committed, and the clone opens and takes appends.
func TestCrashMidStream(t *testing.T) {
	forEachCrashMode(t, func(t *testing.T, mode crashMode) {
		testCrashMidStream(t, mode, Options{PartitionDuration: time.Hour, SyncCommits: mode.sync}, 0)
	})
}

// The same with checkpoints in parts running all along: 300 more heads a commit, 32 KiB parts
// (256 KiB memtables), a checkpoint every 64 KiB of log.
func TestCrashMidCheckpoints(t *testing.T) {
	forEachCrashMode(t, func(t *testing.T, mode crashMode) {
		testCrashMidStream(t, mode, Options{PartitionDuration: time.Hour, SyncCommits: mode.sync,
			MemTableSize: 256 << 10, CheckpointBytes: 64 << 10, CheckpointInterval: time.Hour}, 300)
	})
}

func testCrashMidStream(t *testing.T, mode crashMode, opts Options, wide int) {
	fs := vfs.NewCrashableMem()
	db := openOn(t, fs, opts)
	const series = 5
	// Commit i appends sample i to series "all" and to series "s<i%5>", with 30 other samples
	// in a series of its own so that batches are not trivial, and sample i to each of wide
	// series "w<j>".
	commit := func(db *DB, i int) error {
		app := db.AppenderV2(context.Background())
		for j := range wide {
			if err := appendSmp(app, lbls("__name__", "w", "j", fmt.Sprint(j)), smp{T: int64(i) * 1000, F: float64(i)}, storage.AppendV2Options{}); err != nil {
				return err
			}
		}
		if err := appendSmp(app, lbls("__name__", "all"), smp{T: int64(i) * 1000, F: float64(i)}, storage.AppendV2Options{}); err != nil {
			return err
		}
		if err := appendSmp(app, lbls("__name__", fmt.Sprint("s", i%series)), smp{T: int64(i) * 1000, F: float64(i)}, storage.AppendV2Options{}); err != nil {
			return err
		}
		for j := range 30 {
			if err := appendSmp(app, lbls("__name__", "bulk", "c", fmt.Sprint(i%7)), smp{T: int64(i)*1000 + int64(j), F: float64(j)}, storage.AppendV2Options{}); err != nil {
				return err
			}
		}
		return app.Commit()
	}
	wantAfter := func(n int) map[string][]smp {
		m := newModel()
		for i := range n {
			m.add(lbls("__name__", "all"), smp{T: int64(i) * 1000, F: float64(i)})
			m.add(lbls("__name__", fmt.Sprint("s", i%series)), smp{T: int64(i) * 1000, F: float64(i)})
			for j := range 30 {
				m.add(lbls("__name__", "bulk", "c", fmt.Sprint(i%7)), smp{T: int64(i)*1000 + int64(j), F: float64(j)})
			}
			for j := range wide {
				m.add(lbls("__name__", "w", "j", fmt.Sprint(j)), smp{T: int64(i) * 1000, F: float64(i)})
			}
		}
		return m.query(-1<<62, 1<<62)
	}

	var acked atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writerErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := commit(db, i); err != nil {
				writerErr = err
				return
			}
			acked.Store(int64(i + 1))
		}
	}()
	type crash struct {
		fs             *vfs.MemFS
		ackedBefore    int64
		startedAtLeast int64
	}
	rng := rand.New(rand.NewPCG(21, 22))
	var crashes []crash
	midCheckpoint := 0
	for len(crashes) < 12 {
		// Longer apart with the wide series, so that checkpoints come between the crashes.
		time.Sleep(time.Duration(rng.IntN(3000)*(1+wide/30)) * time.Microsecond)
		before := acked.Load()
		running := db.ckptAsked.Load()
		clone := fs.CrashClone(mode.clone(rng))
		if running && db.ckptAsked.Load() {
			midCheckpoint++ // a checkpoint was asked for or ran before and after: likely during
		}
		crashes = append(crashes, crash{fs: clone, ackedBefore: before, startedAtLeast: acked.Load() + 1})
	}
	if wide > 0 {
		require.Eventually(t, func() bool { return db.Stats().Checkpoints.Load() > 2 }, time.Minute, time.Millisecond)
	}
	close(stop)
	wg.Wait()
	require.NoError(t, writerErr)
	require.Positive(t, acked.Load())
	if wide > 0 {
		require.Greater(t, db.Stats().Checkpoints.Load(), int64(2))
		t.Logf("%d commits, %d checkpoints, %d of the crashes likely during one", acked.Load(), db.Stats().Checkpoints.Load(), midCheckpoint)
	}

	distinct := map[int]bool{}
	for ci, c := range crashes {
		cdb := openClone(t, c.fs, opts)
		got := selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries)
		n := len(got[`{__name__="all"}`])
		require.GreaterOrEqual(t, int64(n), c.ackedBefore, "crash %d lost acknowledged commits", ci)
		require.LessOrEqual(t, int64(n), c.startedAtLeast, "crash %d holds commits that had not begun", ci)
		requireSameSeries(t, wantAfter(n), got, "crash ", ci, " after ", n, " commits")
		distinct[n] = true
		// The clone goes on: the next commit appends in order.
		require.NoError(t, commit(cdb, n))
		requireSameSeries(t, wantAfter(n+1), selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries))
		require.NoError(t, cdb.Close())
	}
	require.Greater(t, len(distinct), 3, "crashes should land at different points")
}

// TestDifferential drives the DB and a simple model with the same random operations
// (in-order, out-of-order, duplicate and too-old appends in random batches; queries; reopens;
// crashes right after a commit) and compares them.
func TestDifferential(t *testing.T) {
	forEachCrashMode(t, func(t *testing.T, mode crashMode) {
		for seed := uint64(1); seed <= 10; seed++ {
			t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runDifferential(t, seed, mode) })
		}
	})
}

func runDifferential(t *testing.T, seed uint64, mode crashMode) {
	rng := rand.New(rand.NewPCG(seed, 99))
	fs := vfs.NewCrashableMem()
	window := int64(30 * minMs)
	opts := Options{PartitionDuration: 20 * time.Minute, OutOfOrderWindow: time.Duration(window) * time.Millisecond,
		SyncCommits: mode.sync}
	db := openOn(t, fs, opts)
	m := newModel()
	committedMax := int64(-1 << 62)
	var lsets []labels.Labels
	for i := range 12 {
		lsets = append(lsets, lbls("__name__", fmt.Sprint("m", i%3), "i", fmt.Sprint(i), "odd", fmt.Sprint(i%2 == 1)))
	}
	frontier := int64(0) // the time in-order appends advance from
	ops := map[string]int{}
	for step := range 300 {
		switch r := rng.IntN(20); {
		case r < 14: // a batch of appends
			app := db.AppenderV2(context.Background())
			batchMax := committedMax
			for range 1 + rng.IntN(40) {
				ls := lsets[rng.IntN(len(lsets))]
				newest, has := m.newest(ls)
				var s smp
				switch k := rng.IntN(10); {
				case k < 6 || !has:
					frontier += rng.Int64N(20_000)
					s = randomValue(rng, frontier)
				case k < 8: // out of order, sometimes outside the window
					s = randomValue(rng, newest.T-rng.Int64N(window+window/2))
				default: // duplicate of an existing sample, same or other value
					list := m.series[ls.String()]
					s = list[rng.IntN(len(list))]
					if rng.IntN(2) == 0 {
						s = randomValue(rng, s.T)
					}
				}
				err := appendSmp(app, ls, s, storage.AppendV2Options{})
				var want error
				switch {
				case has && s.T == newest.T:
					if !s.equal(newest) {
						want = storage.ErrDuplicateSampleForTimestamp
					}
				case has && s.T < newest.T && s.T < max(committedMax, newest.T)-window:
					want = storage.ErrTooOldSample
				}
				if want == nil {
					require.NoError(t, err, "step %d %s %v (newest %v)", step, ls, s, newest)
					if m.add(ls, s) {
						ops["added"]++
						if has && s.T < newest.T {
							ops["ooo"]++
						}
					} else {
						ops["dup"]++
					}
					batchMax = max(batchMax, s.T)
				} else {
					require.ErrorIs(t, err, want, "step %d %s %v (newest %v)", step, ls, s, newest)
					ops[want.Error()]++
				}
			}
			require.NoError(t, app.Commit())
			committedMax = batchMax
		case r < 17: // a query
			mint := rng.Int64N(frontier + 1)
			maxt := mint + rng.Int64N(frontier-mint+1)
			ms := []*labels.Matcher{allSeries}
			if rng.IntN(2) == 0 {
				ms = append(ms, eq("odd", "true"))
			}
			requireSameSeries(t, m.query(mint, maxt, ms...), selectAll(t, db, mint, maxt, nil, ms...), "step ", step)
			ops["query"]++
		case r < 19:
			db = reopen(t, db, fs)
			ops["reopen"]++
		default:
			clone := fs.CrashClone(mode.clone(rng))
			require.NoError(t, db.Close())
			fs = clone
			db = openOn(t, fs, opts)
			ops["crash"]++
		}
	}
	requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "final")
	db = reopen(t, db, fs)
	requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "final after reopen")
	for _, k := range []string{"added", "ooo", "dup", storage.ErrTooOldSample.Error(), storage.ErrDuplicateSampleForTimestamp.Error(), "reopen", "crash"} {
		require.Positive(t, ops[k], "operation %q never happened: %v", k, ops)
	}
}

// randomValue is a float most of the time, else an integer or float histogram; histograms
// of counters that go up and down, so that merges meet counter resets.
func randomValue(rng *rand.Rand, t int64) smp {
	switch rng.IntN(10) {
	case 0:
		return smp{T: t, H: tsdbutil.GenerateTestHistogram(rng.Int64N(5))}
	case 1:
		return smp{T: t, FH: tsdbutil.GenerateTestFloatHistogram(rng.Int64N(5))}
	}
	return smp{T: t, F: float64(rng.IntN(100))}
}
