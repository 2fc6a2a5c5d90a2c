package tsdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestApplyRetention(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour, Retention: 2 * time.Hour})
	ctx := context.Background()
	a, b, c := lbls("__name__", "a"), lbls("__name__", "b"), lbls("__name__", "c")
	aSamples := floatRange(0, 3*hourMs-1000, 30_000)
	mustAppend(t, db, b, floatRange(0, 50*minMs, 60_000)...)
	app := db.AppenderV2(ctx)
	_, err := app.Append(0, c, 0, 30*minMs, 1, nil, nil, storage.AppendV2Options{
		Exemplars: []exemplar.Exemplar{{Labels: lbls("trace_id", "old"), Value: 1, Ts: 30 * minMs, HasTs: true}}})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	mustAppend(t, db, a, aSamples...)
	bRef, err := db.getOrCreate(b)
	require.NoError(t, err)

	// Nothing is old enough yet: cutoff = 3h-1s-2h lies inside partition 0.
	require.NoError(t, db.ApplyRetention(ctx))
	require.Zero(t, db.Stats().PartitionsDropped.Load())
	require.Equal(t, []int64{0, 1, 2}, partitionsOf(db))

	// Newer data moves the cutoff to 2h+1ms: partitions 0 and 1 go, 2 and 3 stay.
	mustAppend(t, db, a, smp{T: 4*hourMs + 1, F: 1})
	aSamples = append(aSamples, smp{T: 4*hourMs + 1, F: 1})
	require.NoError(t, db.ApplyRetention(ctx))
	check := func(db *DB) {
		t.Helper()
		require.Equal(t, []int64{2, 4}, partitionsOf(db))
		require.Equal(t, 2*hourMs, db.MinTime())
		require.Empty(t, selectAll(t, db, 0, 2*hourMs-1, nil, allSeries))
		// No key of the dropped partitions is left, the index's lists included.
		for _, prefix := range [][]byte{postingListPartPrefix(nil, 0), partSeriesPrefix(nil, 0), chunkPartPrefix(nil, 0)} {
			it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: partPrefixEnd(prefix, 2)})
			require.NoError(t, err)
			require.False(t, it.First(), "a key of a dropped partition is left: %x", it.Key())
			require.NoError(t, it.Close())
		}
		requireSameSeries(t, map[string][]smp{a.String(): trim(aSamples, 2*hourMs, 5*hourMs)}, selectAll(t, db, -1<<62, 1<<62, nil, allSeries))
		q, err := db.Querier(-1<<62, 1<<62)
		require.NoError(t, err)
		v, _, err := q.LabelValues(ctx, "__name__", nil)
		require.NoError(t, err)
		require.Equal(t, []string{"a"}, v)
		require.NoError(t, q.Close())
		eqr, err := db.ExemplarQuerier(ctx)
		require.NoError(t, err)
		res, err := eqr.Select(-1<<62, 1<<62, []*labels.Matcher{allSeries})
		require.NoError(t, err)
		require.Empty(t, res)
	}
	check(db)
	require.EqualValues(t, 2, db.Stats().PartitionsDropped.Load())
	// Samples older than the retention are refused.
	require.ErrorIs(t, appendAll(t, db, b, smp{T: 2 * hourMs, F: 1})[0], storage.ErrTooOldSample)
	// Applying it again drops nothing more.
	require.NoError(t, db.ApplyRetention(ctx))
	require.EqualValues(t, 2, db.Stats().PartitionsDropped.Load())

	db = reopen(t, db, fs)
	check(db)
	// A series whose data was all dropped comes back with its ref, and starts afresh.
	app = db.AppenderV2(ctx)
	ref, err := app.Append(0, b, 0, 4*hourMs, 9, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	require.Equal(t, storage.SeriesRef(bRef.ref), ref)
	require.NoError(t, app.Commit())
	requireSamples(t, []smp{{T: 4 * hourMs, F: 9}}, seriesSamples(t, db, b))
}

// Retention that drops a partition first runs a checkpoint in parts, with commits going on
// between the parts; a crash after it neither loses those commits nor brings the dropped
// partition back.
func TestRetentionCheckpointsInPartsFirst(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := partsOptions
	opts.Retention = time.Hour
	db := openOn(t, fs, opts)
	// 30 rounds in partition 0, then 30 in partition 3: partitions 0 to 1 end before the cutoff.
	names := fillHeads(t, db)
	for r := range 30 {
		require.NoError(t, commitFloats(context.Background(), db, 3*hourMs+int64(r)*1000, float64(r), names...))
	}
	var parts atomic.Int64
	db.checkpointPartHook = func() {
		n := parts.Add(1)
		if err := commitFloats(context.Background(), db, 3*hourMs+(30+n)*1000, 1, names[0]); err != nil {
			t.Error(err)
		}
	}
	require.NoError(t, db.ApplyRetention(context.Background()))
	require.Greater(t, parts.Load(), int64(2), "the checkpoint ran in parts")
	require.EqualValues(t, 1, db.Stats().PartitionsDropped.Load())

	check := func(db *DB) {
		t.Helper()
		got := selectAll(t, db, -1<<62, 1<<62, nil, allSeries)
		require.Len(t, got, len(names))
		require.Len(t, got[lbls("__name__", names[0]).String()], 30+int(parts.Load()), "the commits between parts")
		require.Len(t, got[lbls("__name__", names[1]).String()], 30, "partition 0 stays dropped")
	}
	check(db)
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	cdb := openClone(t, clone, opts)
	check(cdb)
}

// A head that points into a dropped partition is forgotten: the series goes on from what is
// left on disk.
func TestRetentionDropsHeadPartition(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, Retention: time.Hour})
	ctx := context.Background()
	old, cur := lbls("__name__", "old"), lbls("__name__", "cur")
	mustAppend(t, db, old, floatRange(0, 10*minMs, minMs)...)
	mustAppend(t, db, cur, floatRange(0, 3*hourMs, 10*minMs)...)
	require.NoError(t, db.ApplyRetention(ctx))
	require.Equal(t, []int64{2, 3}, partitionsOf(db))
	// The head of "old" was in partition 0; a sample within retention is in order again.
	mustAppend(t, db, old, smp{T: 3 * hourMs, F: 1})
	requireSamples(t, []smp{{T: 3 * hourMs, F: 1}}, seriesSamples(t, db, old), "nothing of partition 0 comes back")
	require.Equal(t, []int64{2, 3}, partitionsOf(db))
	requireSamples(t, floatRange(2*hourMs, 3*hourMs, 10*minMs), seriesSamples(t, db, cur))
}

func TestCollectHead(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	ctx := context.Background()
	idle, pending, busy := lbls("__name__", "idle"), lbls("__name__", "pending"), lbls("__name__", "busy")
	refOf := func(ls labels.Labels, s smp) storage.SeriesRef {
		app := db.AppenderV2(ctx)
		ref, err := app.Append(0, ls, 0, s.T, s.F, nil, nil, storage.AppendV2Options{})
		require.NoError(t, err)
		require.NoError(t, app.Commit())
		return ref
	}
	idleRef := refOf(idle, smp{T: 0, F: 1})
	pendingRef := refOf(pending, smp{T: 0, F: 1})
	busyRef := refOf(busy, smp{T: 3 * hourMs, F: 1})
	require.Equal(t, 3, db.HeadSeries())

	// An appender holds "pending" across the collection.
	app := db.AppenderV2(ctx)
	_, err := app.Append(pendingRef, pending, 0, 10, 2, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)

	db.collectHead()
	require.Equal(t, 1, db.HeadSeries(), "idle series leave memory")
	require.EqualValues(t, 2, db.Stats().HeadSeriesCollected.Load())
	require.NoError(t, app.Commit())
	requireSamples(t, []smp{{T: 0, F: 1}, {T: 10, F: 2}}, seriesSamples(t, db, pending))

	// An idle series is found again with its ref and its newest sample.
	require.Equal(t, idleRef, refOf(idle, smp{T: 20, F: 2}))
	require.ErrorIs(t, appendAll(t, db, idle, smp{T: 19, F: 1})[0], storage.ErrOutOfOrderSample)
	require.ErrorIs(t, appendAll(t, db, idle, smp{T: 20, F: 3})[0], storage.ErrDuplicateSampleForTimestamp)
	requireSamples(t, []smp{{T: 0, F: 1}, {T: 20, F: 2}}, seriesSamples(t, db, idle))
	require.Equal(t, busyRef, refOf(busy, smp{T: 3*hourMs + 1, F: 2}))
	// A ref alone names its series while it is in memory.
	app = db.AppenderV2(ctx)
	ref, err := app.Append(busyRef, labels.EmptyLabels(), 0, 3*hourMs+2, 3, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	require.Equal(t, busyRef, ref)
	require.NoError(t, app.Commit())
	requireSamples(t, []smp{{T: 3 * hourMs, F: 1}, {T: 3*hourMs + 1, F: 2}, {T: 3*hourMs + 2, F: 3}}, seriesSamples(t, db, busy))
	// A stale ref of a collected series still works with its labels; alone it is refused as
	// unknown (the caller appends again with the labels), which is no rejected sample.
	db.collectHead()
	app = db.AppenderV2(ctx)
	rejected := db.Stats().RejectedInvalid.Load()
	_, err = app.Append(idleRef, labels.EmptyLabels(), 0, 30, 3, nil, nil, storage.AppendV2Options{})
	require.ErrorIs(t, err, ErrUnknownSeriesRef)
	require.NotErrorIs(t, err, ErrInvalidSample)
	require.Equal(t, rejected, db.Stats().RejectedInvalid.Load())
	ref, err = app.Append(idleRef, idle, 0, 30, 3, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	require.Equal(t, idleRef, ref)
	require.NoError(t, app.Commit())
	requireSamples(t, []smp{{T: 0, F: 1}, {T: 20, F: 2}, {T: 30, F: 3}}, seriesSamples(t, db, idle))
	// Labels come from disk for a series not in memory.
	db.collectHead()
	require.Contains(t, selectAll(t, db, 0, 100, nil, eq("__name__", "idle")), idle.String())
}

// dirSize is the bytes of the regular files under dir, as du would count them (apparent size).
// Pebble deletes obsolete files in the background, so a file listed may be gone when it is
// measured: it counts as nothing.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	require.NoError(t, err)
	return n
}

// fillPartitions writes series with random values (they do not compress) into partitions
// 0..parts-1 of an hour each, and returns the series.
func fillPartitions(t testing.TB, db *DB, parts, series int) []labels.Labels {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 8))
	var all []labels.Labels
	for i := range series {
		all = append(all, lbls("__name__", "fill", "i", fmt.Sprint(i)))
	}
	for p := range int64(parts) {
		app := db.AppenderV2(context.Background())
		for _, ls := range all {
			for ts := p * hourMs; ts < (p+1)*hourMs; ts += 10_000 {
				_, err := app.Append(0, ls, 0, ts, rng.Float64(), nil, nil, storage.AppendV2Options{})
				require.NoError(t, err)
			}
		}
		require.NoError(t, app.Commit())
	}
	return all
}

// Size retention drops the oldest partitions until the database fits, compacts their ranges
// so that the directory really shrinks, keeps the newest partitions intact, and survives a
// reopen. A limit below the newest partition's size drops everything but it.
func TestSizeRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	opts := Options{PartitionDuration: time.Hour, RetentionInterval: time.Hour}
	db, err := Open(dir, opts)
	require.NoError(t, err)
	const parts = 10
	series := fillPartitions(t, db, parts, 100)
	require.NoError(t, db.Close())
	full := dirSize(t, dir)
	t.Logf("10 partitions of 100 series x 360 random samples: directory %d bytes", full)

	limit := full * 6 / 10
	opts.RetentionSize = limit
	db, err = Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	before := db.DiskUsage()
	require.NoError(t, db.ApplyRetention(context.Background()))
	kept := partitionsOf(db)
	t.Logf("retention_size %d: DiskUsage %d bytes before, partitions kept %v", limit, before, kept)
	require.Greater(t, len(kept), 1, "only the oldest partitions go")
	require.Less(t, len(kept), parts, "some partitions go")
	require.Equal(t, int64(parts-1), kept[len(kept)-1], "the newest partition stays")
	for i, p := range kept {
		require.Equal(t, kept[0]+int64(i), p, "the oldest partitions go first, the kept ones are contiguous")
	}
	require.Equal(t, int64(parts-len(kept)), db.Stats().PartitionsDroppedBySize.Load())
	require.Equal(t, db.Stats().PartitionsDropped.Load(), db.Stats().PartitionsDroppedBySize.Load())
	require.Equal(t, limit, db.RetentionSizeLimit())
	// The files of the dropped ranges are deleted (Pebble deletes obsolete files in the
	// background): the space really returns.
	require.Eventually(t, func() bool { return db.DiskUsage() <= uint64(limit) && dirSize(t, dir) <= limit },
		time.Minute, 50*time.Millisecond, "directory %d bytes, limit %d", dirSize(t, dir), limit)
	t.Logf("after retention: DiskUsage %d bytes, directory %d bytes", db.DiskUsage(), dirSize(t, dir))

	check := func(db *DB) {
		t.Helper()
		require.Equal(t, kept, partitionsOf(db))
		require.Empty(t, selectAll(t, db, 0, kept[0]*hourMs-1, nil, allSeries), "the dropped range is empty")
		got := selectStrict(t, db, kept[0]*hourMs, parts*hourMs, nil, allSeries)
		require.Len(t, got, len(series))
		for _, ls := range series {
			require.Len(t, got[ls.String()], len(kept)*360, "series %s keeps every sample of the kept partitions", ls)
		}
	}
	check(db)
	// Within the limit, another run drops nothing.
	require.NoError(t, db.ApplyRetention(context.Background()))
	require.Equal(t, kept, partitionsOf(db))

	// After a reopen with a limit below the newest partition's size, only the newest is left,
	// and the database goes on being written.
	require.NoError(t, db.Close())
	opts.RetentionSize = 1
	db, err = Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	require.NoError(t, db.ApplyRetention(context.Background()))
	require.Equal(t, []int64{parts - 1}, partitionsOf(db))
	require.NoError(t, db.ApplyRetention(context.Background()), "a database that cannot fit is no error")
	mustAppend(t, db, series[0], smp{T: parts * hourMs, F: 1})
	require.Len(t, seriesSamples(t, db, series[0]), 361)
	kept = []int64{parts - 1, parts}
	require.Equal(t, kept, partitionsOf(db))
}

// A fractional size retention is that fraction of the filesystem's total size.
func TestSizeRetentionFraction(t *testing.T) {
	mem := vfs.NewMem()
	// No merging: its writes after the usage is measured would blur the size compared.
	opts := Options{PartitionDuration: time.Hour, RetentionSizeFraction: 0.5, noMerge: true}
	db := openOn(t, mem, opts)
	fillPartitions(t, db, 4, 20)
	require.NoError(t, db.pdb.Flush())
	usage := db.DiskUsage()
	// Without the filesystem's size the limit cannot be computed: an error, nothing dropped.
	err := db.ApplyRetention(context.Background())
	require.ErrorContains(t, err, `retention_size: size of the filesystem of "db"`)
	require.Len(t, partitionsOf(db), 4)

	// A filesystem reported as empty is an error too, never a reason to drop everything.
	mem.TestingSetDiskUsage(vfs.DiskUsage{AvailBytes: 1})
	require.ErrorContains(t, db.ApplyRetention(context.Background()), "reported as 0 bytes")
	require.Len(t, partitionsOf(db), 4)

	// Half of a filesystem of twice the usage: everything fits.
	mem.TestingSetDiskUsage(vfs.DiskUsage{TotalBytes: 2 * usage, AvailBytes: 1})
	require.NoError(t, db.ApplyRetention(context.Background()))
	require.Len(t, partitionsOf(db), 4)
	require.Equal(t, int64(usage), db.RetentionSizeLimit())

	// Half of a filesystem of the usage: about half of the partitions go, the newest stays.
	mem.TestingSetDiskUsage(vfs.DiskUsage{TotalBytes: usage, AvailBytes: 1})
	require.NoError(t, db.ApplyRetention(context.Background()))
	require.Equal(t, int64(usage/2), db.RetentionSizeLimit())
	parts := partitionsOf(db)
	require.Less(t, len(parts), 4)
	require.Equal(t, int64(3), parts[len(parts)-1])
	require.Eventually(t, func() bool { return db.DiskUsage() <= usage/2 }, time.Minute, 50*time.Millisecond)
}

// partPrefixEnd is the start of partition part in the family of prefix (a partition prefix).
func partPrefixEnd(prefix []byte, part int64) []byte {
	return putInt64([]byte{prefix[0]}, part)
}
