package tsdb

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

// openSnapshot opens the snapshot in dir of fs as a database of its own.
func openSnapshot(t *testing.T, fs vfs.FS, dir string, o Options) *DB {
	t.Helper()
	o.FS = fs
	o.RetentionInterval = time.Hour
	snap, err := Open(dir, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = snap.Close() })
	return snap
}

// TestSnapshot: a snapshot taken with the head holds every series and sample (floats in open heads
// and cut chunks over several partitions, histograms), the metadata and the exemplars committed
// before it, and nothing committed after it; it opens as a database of its own while the original
// runs on, and again after the original is closed.
func TestSnapshot(t *testing.T) {
	opts := Options{PartitionDuration: time.Hour}
	db, fs := openMem(t, opts)
	m := newModel()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for i := range 20 {
		ls := lbls("__name__", "float", "i", fmt.Sprint(i))
		// 3 hours at 15 s: several partitions, cut chunks, and an open head in the sample log.
		for _, s := range floatRange(int64(i)*1000, 3*hourMs+int64(i)*1000, 15_000) {
			m.add(ls, s)
		}
		mustAppend(t, db, ls, floatRange(int64(i)*1000, 3*hourMs+int64(i)*1000, 15_000)...)
	}
	h := lbls("__name__", "hist")
	var hs []smp
	for i := range int64(40) {
		hs = append(hs, smp{T: i * 15_000, H: tsdbutil.GenerateTestHistogram(i)})
		m.add(h, hs[i])
	}
	mustAppend(t, db, h, hs...)
	app := db.AppenderV2(context.Background())
	_, err := app.Append(0, lbls("__name__", "float", "i", "0"), 0, 3*hourMs+minMs, 42, nil, nil, storage.AppendV2Options{
		Metadata:         metadata.Metadata{Type: "gauge", Unit: "seconds", Help: "a gauge"},
		MetricFamilyName: "float",
	})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	m.add(lbls("__name__", "float", "i", "0"), smp{T: 3*hourMs + minMs, F: 42})
	want := m.query(-1<<62, 1<<62, all)
	wantMeta := db.Metadata("")

	require.NoError(t, fs.MkdirAll("snapshots/one", 0o755)) // as Prometheus's API creates it
	require.NoError(t, db.Snapshot("snapshots/one", true))

	// Written after the snapshot: not in it.
	mustAppend(t, db, lbls("__name__", "float", "i", "0"), smp{T: 4 * hourMs, F: 1})
	mustAppend(t, db, lbls("__name__", "later"), smp{T: 4 * hourMs, F: 1})

	snap := openSnapshot(t, fs, "snapshots/one", opts)
	requireSameSeries(t, want, selectAll(t, snap, -1<<62, 1<<62, nil, all), "snapshot while the original runs")
	require.Equal(t, wantMeta, snap.Metadata(""))
	require.Equal(t, int64(3*hourMs+minMs), snap.MaxTime())
	require.NoError(t, snap.Close())

	// The snapshot does not depend on the original's files.
	require.NoError(t, db.Close())
	require.NoError(t, fs.RemoveAll(testDir))
	snap = openSnapshot(t, fs, "snapshots/one", opts)
	requireSameSeries(t, want, selectAll(t, snap, -1<<62, 1<<62, nil, all), "snapshot after the original is gone")
	// It is a working database: it takes writes.
	mustAppend(t, snap, lbls("__name__", "float", "i", "0"), smp{T: 5 * hourMs, F: 5})
	require.NoError(t, snap.Close())
}

// TestSnapshotDirectory: the directory must be new or empty; a closed database refuses.
func TestSnapshotDirectory(t *testing.T) {
	db, fs := openMem(t, Options{})
	mustAppend(t, db, lbls("__name__", "a"), smp{T: 1, F: 1})
	require.NoError(t, db.Snapshot("new/dir", true), "a directory that does not exist is created")
	require.NoError(t, fs.MkdirAll("full", 0o755))
	f, err := fs.Create("full/file", vfs.WriteCategoryUnspecified)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	err = db.Snapshot("full", true)
	require.ErrorContains(t, err, `snapshot directory "full" is not empty`)
	require.NoError(t, db.Close())
	require.ErrorIs(t, db.Snapshot("after-close", true), ErrClosed)
}

// TestSnapshotWithoutHead: skip_head's snapshot holds what Pebble holds: the chunks cut and the
// heads as of the last checkpoint, not the samples only the sample log has.
func TestSnapshotWithoutHead(t *testing.T) {
	opts := Options{PartitionDuration: time.Hour}
	db, fs := openMem(t, opts)
	ls := lbls("__name__", "a")
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	mustAppend(t, db, ls, floatRange(0, 10*minMs, 15_000)...)
	db.writeMu.Lock()
	require.NoError(t, db.checkpointLocked(headsQuick))
	db.writeMu.Unlock()
	mustAppend(t, db, ls, floatRange(10*minMs+15_000, 20*minMs, 15_000)...)
	require.NoError(t, db.Snapshot("nohead", false))
	snap := openSnapshot(t, fs, "nohead", opts)
	got := selectAll(t, snap, -1<<62, 1<<62, nil, all)[ls.String()]
	// Chunks are cut at 120 samples: the first 120 are in a cut chunk; the checkpointed head
	// holds the rest up to 10 minutes; the samples after it are only in the log.
	requireSamples(t, floatRange(0, 10*minMs, 15_000), got)
}

// TestSnapshotConcurrentWrites: writers commit while snapshots are taken. Each commit writes one
// sample at the same timestamp to every series of its writer, so in a consistent snapshot every
// series of a writer holds the same timestamps 1..n (after its seed), with n at least the commits acknowledged
// before Snapshot was called and at most those begun before it returned.
func TestSnapshotConcurrentWrites(t *testing.T) {
	opts := Options{PartitionDuration: time.Hour}
	db, fs := openMem(t, opts)
	const writers, seriesPerWriter = 4, 25
	// Series s starts with s older samples, so that the series of a writer cut their chunks at
	// different commits: a snapshot that took a commit's cut chunks without its heads shows.
	seed := func(s int) []smp {
		var out []smp
		for k := 1; k <= s; k++ { // before the writers' first timestamp, in the same partition
			out = append(out, smp{T: int64(k) * 1000, F: float64(-k)})
		}
		return out
	}
	for w := range writers {
		for s := 1; s < seriesPerWriter; s++ {
			mustAppend(t, db, lbls("__name__", "c", "w", fmt.Sprint(w), "s", fmt.Sprint(s)), seed(s)...)
		}
	}
	var acked, begun [writers]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for n := int64(1); ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				begun[w].Store(n)
				app := db.AppenderV2(context.Background())
				for s := range seriesPerWriter {
					ls := lbls("__name__", "c", "w", fmt.Sprint(w), "s", fmt.Sprint(s))
					if _, err := app.Append(0, ls, 0, (seriesPerWriter+n)*1000, float64(n), nil, nil, storage.AppendV2Options{}); err != nil {
						t.Error(err)
						return
					}
				}
				if err := app.Commit(); err != nil {
					t.Error(err)
					return
				}
				acked[w].Store(n)
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	for i := range 5 {
		// Let every writer pass a chunk cut (120 samples) between snapshots.
		for w := range writers {
			for acked[w].Load() < int64(150*(i+1)) {
				time.Sleep(time.Millisecond)
			}
		}
		var low, high [writers]int64
		for w := range writers {
			low[w] = acked[w].Load()
		}
		dir := fmt.Sprintf("snap%d", i)
		require.NoError(t, db.Snapshot(dir, true))
		for w := range writers {
			high[w] = begun[w].Load()
		}
		snap := openSnapshot(t, fs, dir, opts)
		got := selectAll(t, snap, -1<<62, 1<<62, nil, all)
		require.Equal(t, writers*seriesPerWriter, len(got), "snapshot %d: every series", i)
		for w := range writers {
			var n int64 = -1
			for s := range seriesPerWriter {
				ls := lbls("__name__", "c", "w", fmt.Sprint(w), "s", fmt.Sprint(s))
				samples := got[ls.String()]
				want := seed(s)
				if n < 0 {
					n = int64(len(samples) - len(want))
					require.GreaterOrEqual(t, n, low[w], "snapshot %d writer %d: a commit acknowledged before the snapshot is missing", i, w)
					require.LessOrEqual(t, n, high[w], "snapshot %d writer %d: holds a commit begun after the snapshot", i, w)
				}
				for k := int64(1); k <= n; k++ {
					want = append(want, smp{T: (seriesPerWriter + k) * 1000, F: float64(k)})
				}
				requireSamples(t, want, samples, fmt.Sprintf("snapshot %d writer %d series %d: not the same commits as the writer's other series", i, w, s))
			}
		}
		require.NoError(t, snap.Close())
	}
}

// A snapshot with the head first runs a checkpoint in parts, with commits going on between them;
// the checkpoint under the lock then writes only what those commits added, and the snapshot holds
// them too.
func TestSnapshotCheckpointsInPartsFirst(t *testing.T) {
	opts := partsOptions
	db, fs := openMem(t, opts)
	names := fillHeads(t, db)
	var parts atomic.Int64
	db.checkpointPartHook = func() {
		n := parts.Add(1)
		// A commit between two parts: the checkpointer's goroutine holds no lock here.
		if err := commitFloats(context.Background(), db, (30+n)*1000, 1, names[0]); err != nil {
			t.Error(err)
		}
	}
	before := db.Stats().Checkpoints.Load()
	require.NoError(t, db.Snapshot("snap", true))
	require.Greater(t, parts.Load(), int64(2), "the first checkpoint ran in parts")
	require.Equal(t, before+2, db.Stats().Checkpoints.Load(), "the checkpoint in parts and the one under the lock")

	snap := openSnapshot(t, fs, "snap", opts)
	got := selectAll(t, snap, -1<<62, 1<<62, nil, allSeries)
	require.Len(t, got, len(names))
	require.Len(t, got[lbls("__name__", names[0]).String()], 30+int(parts.Load()), "the commits between parts")
	require.Len(t, got[lbls("__name__", names[1]).String()], 30)
}

// TestSnapshotRefusedBelowReserve: a store that refuses writes for the free-space reserve refuses
// snapshots too (they write to the same disk), leaves no directory behind, and takes them again
// once there is room.
func TestSnapshotRefusedBelowReserve(t *testing.T) {
	ctx := context.Background()
	fs := newFaultFS()
	fs.free.Store(100 << 20)
	db := openOn(t, fs, Options{PartitionDuration: time.Hour, MinFreeSpace: 10 << 20})
	checkSpaceEveryCommit(db)
	require.NoError(t, commitFloats(ctx, db, 1000, 1, "a"))
	fs.free.Store(5 << 20)
	require.ErrorIs(t, commitFloats(ctx, db, 2000, 2, "a"), ErrUnavailable)
	require.NoError(t, fs.MkdirAll("snap", 0o755))
	err := db.Snapshot("snap", true)
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "below the reserve")
	_, err = fs.Stat("snap")
	require.True(t, oserror.IsNotExist(err), "the empty snapshot directory is removed: %v", err)

	fs.free.Store(12 << 20)
	require.NoError(t, commitFloats(ctx, db, 2000, 2, "a"))
	require.NoError(t, db.Snapshot("snap", true))
	snap := openSnapshot(t, fs, "snap", Options{PartitionDuration: time.Hour, MinFreeSpace: -1})
	require.Equal(t, map[string][]smp{`{__name__="a"}`: {{T: 1000, F: 1}, {T: 2000, F: 2}}}, selectAll(t, snap, 0, 1<<62, nil, allSeries))
}
