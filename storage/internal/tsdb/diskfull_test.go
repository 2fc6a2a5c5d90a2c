package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// faultFS wraps a crashable MemFS and injects the faults of a full, read-only or vanished disk
// into the sample log's files (the store's point of refusal), reports a configurable free space,
// and can fail the creation of Pebble's tables (a flush on a full disk).
//
// Pebble's own write-ahead log is left alone: Pebble panics when it fails (see writeguard.go),
// which is why the store keeps a reserve and stops writing before it gets there.
type faultFS struct {
	vfs.FS
	mem *vfs.MemFS

	fault atomic.Int32 // a faultKind
	// free is what GetDiskUsage reports as available; 0 means "not supported" (no reserve).
	free     atomic.Uint64
	sstFails atomic.Bool // creating a Pebble table fails with ENOSPC
}

type faultKind int32

const (
	faultNone faultKind = iota
	faultWriteENOSPC
	faultSyncENOSPC
	faultCreateENOSPC
	faultEROFS
	faultDirGone
)

func (k faultKind) String() string {
	return [...]string{"none", "write-ENOSPC", "sync-ENOSPC", "create-ENOSPC", "EROFS", "directory-gone"}[k]
}

const fakeTotal = 1 << 30

func newFaultFS() *faultFS {
	mem := vfs.NewCrashableMem()
	return &faultFS{FS: mem, mem: mem}
}

func (fs *faultFS) set(k faultKind) { fs.fault.Store(int32(k)) }
func (fs *faultFS) kind() faultKind { return faultKind(fs.fault.Load()) }

func inLog(name string) bool { return strings.Contains(name, "/"+logDir+"/") }

func (fs *faultFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") && fs.sstFails.Load() {
		return nil, &pathErr{"create", name, syscall.ENOSPC}
	}
	if inLog(name) {
		switch fs.kind() {
		case faultCreateENOSPC:
			return nil, &pathErr{"create", name, syscall.ENOSPC}
		case faultEROFS:
			return nil, &pathErr{"create", name, syscall.EROFS}
		case faultDirGone:
			return nil, &pathErr{"create", name, syscall.ENOENT}
		}
	}
	f, err := fs.FS.Create(name, cat)
	if err != nil || !inLog(name) {
		return f, err
	}
	return &faultFile{File: f, fs: fs}, nil
}

func (fs *faultFS) OpenDir(name string) (vfs.File, error) {
	if strings.HasSuffix(name, logDir) && fs.kind() == faultDirGone {
		return nil, &pathErr{"open", name, syscall.ENOENT}
	}
	return fs.FS.OpenDir(name)
}

func (fs *faultFS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	if fs.kind() == faultDirGone {
		return vfs.DiskUsage{}, &pathErr{"statfs", path, syscall.ENOENT}
	}
	free := fs.free.Load()
	if free == 0 {
		return vfs.DiskUsage{}, vfs.ErrUnsupported
	}
	return vfs.DiskUsage{AvailBytes: free, TotalBytes: fakeTotal, UsedBytes: fakeTotal - free}, nil
}

type pathErr struct {
	op, path string
	err      syscall.Errno
}

func (e *pathErr) Error() string { return e.op + " " + e.path + ": " + e.err.Error() }
func (e *pathErr) Unwrap() error { return e.err }

// faultFile is a sample log segment. A write on a full disk writes part of the record (as
// write(2) does when the space runs out in the middle) and fails; a vanished directory does not
// stop writes to a file already open (as on Linux).
type faultFile struct {
	vfs.File
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	switch f.fs.kind() {
	case faultWriteENOSPC:
		n, _ := f.File.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	case faultEROFS:
		return 0, syscall.EROFS
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.kind() == faultEROFS {
		return 0, syscall.EROFS
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	switch f.fs.kind() {
	case faultSyncENOSPC:
		return syscall.ENOSPC
	case faultEROFS:
		return syscall.EROFS
	}
	return f.File.Sync()
}

// commitFloats commits one sample per series in one appender.
func commitFloats(ctx context.Context, db *DB, t int64, v float64, names ...string) error {
	app := db.AppenderV2(ctx)
	for _, n := range names {
		if err := appendSmp(app, lbls("__name__", n), smp{T: t, F: v}, storage.AppendV2Options{}); err != nil {
			_ = app.Rollback()
			return err
		}
	}
	return app.Commit()
}

// checkSpaceEveryCommit makes the free-space check run on every commit, so tests need no clock.
func checkSpaceEveryCommit(db *DB) {
	db.guard.checkEvery = 0
	db.guard.nextCheck.Store(0)
}

// checkpointNow checkpoints, so that the next log record starts a new segment.
func checkpointNow(t *testing.T, db *DB) {
	t.Helper()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	require.NoError(t, db.checkpointLocked(headsQuick))
}

// A commit whose log record cannot be written (full disk on write, on sync, on creating a
// segment; a read-only disk; a vanished directory) is refused with ErrUnavailable and leaves no
// trace: queries go on answering with everything acknowledged, a crash right after keeps exactly
// the acknowledged samples, and once the fault is gone commits succeed again without a reopen.
func TestRefusedCommitLeavesNoTrace(t *testing.T) {
	for _, kind := range []faultKind{faultWriteENOSPC, faultSyncENOSPC, faultCreateENOSPC, faultEROFS, faultDirGone} {
		t.Run(kind.String(), func(t *testing.T) { testRefusedCommit(t, kind) })
	}
}

func testRefusedCommit(t *testing.T, kind faultKind) {
	ctx := context.Background()
	fs := newFaultFS()
	opts := Options{PartitionDuration: time.Hour, SyncCommits: kind == faultSyncENOSPC, ProbeInterval: time.Nanosecond}
	db := openOn(t, fs, opts)
	m := newModel()
	commit := func(db *DB, ts int64, names ...string) error {
		err := commitFloats(ctx, db, ts, float64(ts), names...)
		if err == nil {
			for _, n := range names {
				m.add(lbls("__name__", n), smp{T: ts, F: float64(ts)})
			}
		}
		return err
	}
	// Enough samples to cut a chunk of "a" while the fault is on (a cut chunk lives in the batch
	// of the refused commit, which must be dropped).
	for ts := int64(1); ts <= 119; ts++ {
		require.NoError(t, commit(db, ts*1000, "a", "b"))
	}
	if kind == faultCreateENOSPC || kind == faultDirGone {
		checkpointNow(t, db) // the next record needs a new segment
		require.NoError(t, commit(db, 120_000, "a", "b"))
		checkpointNow(t, db)
	}
	acked := m.query(-1<<62, 1<<62)
	lastAcked := db.MaxTime()

	fs.set(kind)
	for i, ts := range []int64{121_000, 122_000, 123_000} {
		err := commit(db, ts, "a", "b", fmt.Sprint("new", i))
		require.ErrorIs(t, err, ErrUnavailable, "commit at %d", ts)
		require.ErrorContains(t, err, "sample log")
		ok, why := db.Writable()
		require.False(t, ok)
		require.ErrorIs(t, why, ErrUnavailable)
		// Queries answer meanwhile, with exactly what was acknowledged.
		requireSameSeries(t, acked, selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "during the fault")
	}
	require.Equal(t, lastAcked, db.MaxTime(), "a refused commit moved the newest timestamp")

	// A crash while the fault holds: the clone has exactly the acknowledged samples.
	clone := fs.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	cdb := openClone(t, clone, Options{PartitionDuration: time.Hour})
	requireSameSeries(t, acked, selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries), "crash during the fault")
	require.NoError(t, cdb.Close())

	// The fault goes away: the same commits succeed again, without a reopen.
	fs.set(faultNone)
	for i, ts := range []int64{121_000, 122_000, 123_000} {
		require.NoError(t, commit(db, ts, "a", "b", fmt.Sprint("new", i)), "commit at %d after the fault", ts)
	}
	ok, why := db.Writable()
	require.True(t, ok, "%v", why)
	for ts := int64(124); ts <= 300; ts++ {
		require.NoError(t, commit(db, ts*1000, "a", "b"))
	}
	want := m.query(-1<<62, 1<<62)
	requireSameSeries(t, want, selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "after the fault")

	// And a crash after healing keeps every acknowledged sample, nothing refused.
	clone = fs.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	cdb = openClone(t, clone, Options{PartitionDuration: time.Hour})
	requireSameSeries(t, want, selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries), "crash after the fault")
	require.NoError(t, cdb.Close())
	requireSameSeries(t, want, selectAll(t, reopen(t, db, fs), -1<<62, 1<<62, nil, allSeries), "reopen after the fault")
}

// Below the free-space reserve every commit is refused before it writes anything; queries
// answer; the store heals by itself once there is room again (a little above the reserve).
func TestFreeSpaceReserve(t *testing.T) {
	ctx := context.Background()
	fs := newFaultFS()
	fs.free.Store(100 << 20)
	db := openOn(t, fs, Options{PartitionDuration: time.Hour, MinFreeSpace: 10 << 20})
	checkSpaceEveryCommit(db)
	require.Equal(t, uint64(10<<20), db.Reserve())
	require.NoError(t, commitFloats(ctx, db, 1000, 1, "a"))

	fs.free.Store(5 << 20)
	err := commitFloats(ctx, db, 2000, 2, "a")
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "below the reserve")
	require.Equal(t, int64(1), db.CommitsRefused())
	require.Equal(t, map[string][]smp{`{__name__="a"}`: {{T: 1000, F: 1}}}, selectAll(t, db, 0, 1<<62, nil, allSeries))

	fs.free.Store(10<<20 + 1) // above the reserve, within the hysteresis
	require.ErrorIs(t, commitFloats(ctx, db, 2000, 2, "a"), ErrUnavailable)
	fs.free.Store(12 << 20)
	require.NoError(t, commitFloats(ctx, db, 2000, 2, "a"))
	ok, _ := db.Writable()
	require.True(t, ok)
	require.Equal(t, map[string][]smp{`{__name__="a"}`: {{T: 1000, F: 1}, {T: 2000, F: 2}}}, selectAll(t, db, 0, 1<<62, nil, allSeries))

	// The default reserve is the smaller of 64 MiB and a quarter of the filesystem.
	require.NoError(t, db.Close())
	db = openOn(t, fs, Options{PartitionDuration: time.Hour})
	require.Equal(t, uint64(64<<20), db.Reserve())
}

// A vanished data directory is seen by the free-space check (statfs fails) even while the open
// segment still takes writes, as it does on Linux.
func TestVanishedDirectoryRefuses(t *testing.T) {
	ctx := context.Background()
	fs := newFaultFS()
	fs.free.Store(100 << 20)
	db := openOn(t, fs, Options{PartitionDuration: time.Hour, MinFreeSpace: 1 << 20})
	checkSpaceEveryCommit(db)
	require.NoError(t, commitFloats(ctx, db, 1000, 1, "a"))
	fs.set(faultDirGone)
	err := commitFloats(ctx, db, 2000, 2, "a")
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "no such file or directory")
	require.Len(t, selectAll(t, db, 0, 1<<62, nil, allSeries)[`{__name__="a"}`], 1)
	fs.set(faultNone)
	require.NoError(t, commitFloats(ctx, db, 2000, 2, "a"))
}

// Pebble retries a failing flush in a loop and, once its memtables are full, blocks every
// commit in a write stall. The store refuses commits from the first failed flush until a flush
// succeeds, and queries answer meanwhile.
func TestFlushFailureRefusesUntilAFlushSucceeds(t *testing.T) {
	ctx := context.Background()
	fs := newFaultFS()
	db := openOn(t, fs, Options{PartitionDuration: time.Hour})
	require.NoError(t, commitFloats(ctx, db, 1000, 1, "a"))
	checkpointNow(t, db) // puts the head in the memtable

	fs.sstFails.Store(true)
	_, _ = db.pdb.AsyncFlush()
	require.Eventually(t, func() bool { ok, _ := db.Writable(); return !ok }, time.Minute, time.Millisecond,
		"a failed flush must refuse writes")
	err := commitFloats(ctx, db, 2000, 2, "a")
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "flush")
	require.Equal(t, map[string][]smp{`{__name__="a"}`: {{T: 1000, F: 1}}}, selectAll(t, db, 0, 1<<62, nil, allSeries))

	fs.sstFails.Store(false)
	require.Eventually(t, func() bool { ok, _ := db.Writable(); return ok }, time.Minute, time.Millisecond,
		"a successful flush must heal the store")
	require.NoError(t, commitFloats(ctx, db, 2000, 2, "a"))
}

// A commit that waits behind a stuck one gives up when its context ends, with ErrUnavailable,
// and queries do not wait for the stuck commit at all (they never take writeMu).
func TestStuckWriterBlocksNeitherQueriesNorLaterCommitsPastTheirDeadline(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	require.NoError(t, commitFloats(context.Background(), db, 1000, 1, "a"))

	db.writeMu.Lock() // a commit stuck in the disk
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := commitFloats(ctx, db, 2000, 2, "a")
	require.ErrorIs(t, err, ErrUnavailable)
	require.ErrorContains(t, err, "another write is still in progress")

	done := make(chan map[string][]smp)
	go func() { done <- selectAll(t, db, 0, 1<<62, nil, allSeries) }()
	select {
	case got := <-done:
		require.Equal(t, map[string][]smp{`{__name__="a"}`: {{T: 1000, F: 1}}}, got)
	case <-time.After(time.Minute):
		t.Fatal("a query waited for the stuck writer")
	}
	db.writeMu.Unlock()
	require.NoError(t, commitFloats(context.Background(), db, 2000, 2, "a"))
}

// Writers that are refused at random while queries run: every query sees a prefix of the
// acknowledged commits (cut chunks included, whose batch may be applied while the query takes
// its snapshot), and a crash clone taken at the end holds exactly the acknowledged commits.
func TestRandomLogFaultsUnderLoad(t *testing.T) {
	fs := newFaultFS()
	opts := Options{PartitionDuration: time.Hour, ProbeInterval: time.Nanosecond, CheckpointBytes: 64 << 10}
	db := openOn(t, fs, opts)
	const series = 8
	names := make([]string, series)
	for i := range names {
		names[i] = fmt.Sprint("s", i)
	}
	var (
		mu    sync.Mutex
		acked int64 // samples per series acknowledged; sample i is at i*1000 with value i
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(5, 6))
		next := int64(0)
		for range 3000 {
			kinds := []faultKind{faultNone, faultNone, faultNone, faultWriteENOSPC, faultCreateENOSPC, faultEROFS}
			fs.set(kinds[rng.IntN(len(kinds))])
			err := commitFloats(context.Background(), db, next*1000, float64(next), names...)
			if err == nil {
				next++
				mu.Lock()
				acked = next
				mu.Unlock()
				continue
			}
			if !assertUnavailable(t, err) {
				return
			}
		}
		fs.set(faultNone)
		close(stop)
	}()
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		mu.Lock()
		before := acked
		mu.Unlock()
		got := selectAll(t, db, -1<<62, 1<<62, nil, allSeries)
		for _, n := range names {
			s := got[`{__name__="`+n+`"}`]
			require.GreaterOrEqual(t, int64(len(s)), before, "query lost acknowledged samples of %s", n)
			for i, p := range s {
				require.Equal(t, smp{T: int64(i) * 1000, F: float64(i)}, p)
			}
		}
	}
	wg.Wait()
	require.Positive(t, acked)
	require.Positive(t, db.Stats().Checkpoints.Load())
	clone := fs.mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	cdb := openClone(t, clone, Options{PartitionDuration: time.Hour})
	got := selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries)
	for _, n := range names {
		require.Len(t, got[`{__name__="`+n+`"}`], int(acked), "series %s after the crash", n)
	}
}

func assertUnavailable(t *testing.T, err error) bool {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("got %v, want an error wrapping ErrUnavailable", err)
		return false
	}
	return true
}
