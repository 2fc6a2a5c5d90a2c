package tsdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"math/rand/v2"
)

// logRecords counts the records of the sample log.
func logRecords(t *testing.T, db *DB) int {
	t.Helper()
	_, segs, err := openSampleLog(db.opts.FS, db.dir, false)
	require.NoError(t, err)
	n := 0
	for _, seg := range segs {
		k, err := readSegment(db.opts.FS, seg, func([]byte) error { return nil })
		require.NoError(t, err)
		n += k
	}
	return n
}

// Float samples committed are held by the log until a checkpoint writes the head chunks; a
// crash before that replays the log, and the replay checkpoints.
func TestLogReplayAfterCrash(t *testing.T) { forEachCrashMode(t, testLogReplayAfterCrash) }

func testLogReplayAfterCrash(t *testing.T, mode crashMode) {
	fs := vfs.NewCrashableMem()
	opts := Options{PartitionDuration: time.Hour, CheckpointInterval: time.Hour, SyncCommits: mode.sync}
	db := openOn(t, fs, opts)
	ls := lbls("__name__", "up", "job", "a")
	// 300 samples: two chunks cut (written at the cut), the third open and only in the log.
	want := floatRange(0, 299*1000, 1000)
	for _, s := range want {
		mustAppend(t, db, ls, s)
	}
	require.Equal(t, 300, logRecords(t, db), "one log record per commit")
	require.Equal(t, int64(0), db.Stats().Checkpoints.Load())
	requireSamples(t, want, selectStrict(t, db, 0, 1<<40, nil, eq("job", "a"))[ls.String()], "head read from memory")

	clone := fs.CrashClone(mode.clone(rand.New(rand.NewPCG(1, 2))))
	cdb := openClone(t, clone, opts)
	requireSamples(t, want, selectStrict(t, cdb, 0, 1<<40, nil, eq("job", "a"))[ls.String()], "after replay")
	require.Zero(t, logRecords(t, cdb), "the replay checkpoints and deletes the log")
	require.Equal(t, int64(1), cdb.Stats().Checkpoints.Load())
	require.Equal(t, int64(299*1000), cdb.MaxTime())

	// The replayed head is appended to as before the crash.
	mustAppend(t, cdb, ls, smp{T: 300 * 1000, F: 300})
	require.Error(t, appendAll(t, cdb, ls, smp{T: 299 * 1000, F: 1})[0], "the replayed newest sample is known")
}

// Without SyncCommits the log is fsynced every LogSyncInterval, checkpoint or not: a power loss
// that keeps nothing unsynced keeps every sample committed before the last sync.
func TestLogSyncedBetweenCheckpoints(t *testing.T) {
	for _, synced := range []bool{true, false} {
		t.Run(fmt.Sprint("synced=", synced), func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			opts := Options{PartitionDuration: time.Hour, CheckpointInterval: time.Hour, LogSyncInterval: time.Hour}
			if synced {
				opts.LogSyncInterval = 5 * time.Millisecond
			}
			db := openOn(t, fs, opts)
			ls := lbls("__name__", "up")
			want := floatRange(0, 199*1000, 1000) // a chunk cut, the head open: all in the log
			for _, s := range want {
				mustAppend(t, db, ls, s)
			}
			if synced {
				require.Eventually(t, func() bool {
					db.writeMu.Lock()
					defer db.writeMu.Unlock()
					return !db.log.dirty
				}, 10*time.Second, time.Millisecond)
			}
			require.Zero(t, db.Stats().Checkpoints.Load(), "no checkpoint: the sync alone")
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
			got := selectAll(t, openClone(t, clone, opts), 0, 1<<40, nil, eq("__name__", "up"))[ls.String()]
			if synced {
				requireSamples(t, want, got, "a power loss after the log's sync")
			} else {
				require.Less(t, len(got), len(want), "a power loss before any sync keeps the log's samples (the test cannot tell)")
			}
		})
	}
}

// A checkpoint writes the open heads and empties the log; Close checkpoints too, so a clean
// reopen replays nothing.
func TestCheckpoint(t *testing.T) {
	db, fs := openMem(t, Options{CheckpointInterval: time.Hour, CheckpointBytes: 64})
	ls := lbls("__name__", "m")
	for _, s := range floatRange(0, 19, 1) {
		mustAppend(t, db, ls, s)
		waitCheckpoint(t, db)
	}
	require.Positive(t, db.Stats().Checkpoints.Load(), "64 bytes of log trigger a checkpoint")
	require.Less(t, logRecords(t, db), 20)

	db = reopen(t, db, fs)
	require.Zero(t, logRecords(t, db))
	requireSamples(t, floatRange(0, 19, 1), selectStrict(t, db, 0, 100, nil, eq("__name__", "m"))[ls.String()])
}

// waitCheckpoint waits until the checkpoint a commit asked for, if any, is done.
func waitCheckpoint(t testing.TB, db *DB) {
	t.Helper()
	require.Eventually(t, func() bool { return !db.ckptAsked.Load() }, 10*time.Second, time.Millisecond)
}

// partsOptions make a checkpoint of fillHeads' heads run in parts: 256 KiB memtables take 32 KiB
// parts, a few hundred of the heads each; checkpoints come only when asked for.
var partsOptions = Options{PartitionDuration: time.Hour, MemTableSize: 256 << 10, CheckpointInterval: time.Hour, CheckpointBytes: 1 << 30}

// fillHeads commits 30 rounds of one sample a second to 2,000 series m<i>, whose heads then hold
// samples only the log has, and returns their names.
func fillHeads(t *testing.T, db *DB) []string {
	t.Helper()
	names := make([]string, 2000)
	for i := range names {
		names[i] = fmt.Sprint("m", i)
	}
	for r := range 30 {
		require.NoError(t, commitFloats(context.Background(), db, int64(r)*1000, float64(r), names...))
	}
	return names
}

// checkpointInPartsWith runs a checkpoint in parts that calls f on the test's goroutine between
// every two parts, with the checkpointer waiting; it returns the number of calls once the
// checkpoint is done.
func checkpointInPartsWith(t *testing.T, db *DB, f func(part int)) (parts int) {
	between, resume := make(chan struct{}), make(chan struct{})
	db.checkpointPartHook = func() {
		select {
		case between <- struct{}{}:
			<-resume
		case <-resume: // closed: the test is over
		}
	}
	defer close(resume)
	db.kickCheckpoint()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case <-between:
			parts++
			f(parts)
			resume <- struct{}{}
		case <-time.After(time.Millisecond):
			if !db.ckptAsked.Load() {
				return parts
			}
		case <-deadline:
			t.Fatal("the checkpoint did not end")
		}
	}
}

// A checkpoint in parts lets commits in between its parts, and loses none of them: commits to
// heads it has written and to heads it has yet to write, and to new series, are all visible to
// queries meanwhile, and after it ends a crash (and a reopen) keeps every one though the log
// segments before the checkpoint are gone.
func TestCheckpointInParts(t *testing.T) {
	forEachCrashMode(t, func(t *testing.T, mode crashMode) {
		fs := vfs.NewCrashableMem()
		// 256 KiB memtables: 32 KiB parts, a few hundred of the heads below each.
		opts := Options{PartitionDuration: time.Hour, MemTableSize: 256 << 10, CheckpointInterval: time.Hour,
			CheckpointBytes: 1 << 30, SyncCommits: mode.sync}
		db := openOn(t, fs, opts)
		names := make([]string, 2000)
		for i := range names {
			names[i] = fmt.Sprint("m", i)
		}
		m := newModel()
		commit := func(tt int64, names ...string) {
			require.NoError(t, commitFloats(context.Background(), db, tt, float64(tt), names...))
			for _, n := range names {
				m.add(lbls("__name__", n), smp{T: tt, F: float64(tt)})
			}
		}
		for r := range 30 {
			commit(int64(r)*1000, names...)
		}
		before := db.Stats().Checkpoints.Load()
		parts := checkpointInPartsWith(t, db, func(part int) {
			// Heads not written yet are dirty in memory only, listed by the run alone at first.
			requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "at part ", part)
			tt := int64(30+part) * 1000
			// The first and the last heads: the first written by now, the last not yet. And
			// a series the checkpoint does not know.
			commit(tt, names[0], names[len(names)-1], fmt.Sprint("new", part))
			requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "between parts ", part)
		})
		require.Equal(t, before+1, db.Stats().Checkpoints.Load())
		require.Greater(t, parts, 2, "the checkpoint ran in parts")
		t.Log(parts, "parts")
		require.Nil(t, db.ckpt)
		// Of the log, only what the commits between parts wrote is left.
		require.Equal(t, parts, logRecords(t, db))

		clone := fs.CrashClone(mode.clone(rand.New(rand.NewPCG(1, 2))))
		cdb := openClone(t, clone, opts)
		requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries), "after a crash")
		require.NoError(t, cdb.Close())
		db = reopen(t, db, fs)
		requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries), "after a reopen")
	})
}

// A checkpoint under writeMu (Close's, retention's, a snapshot's) that comes while one in parts
// runs writes the heads that one has not written yet, and that one stops.
func TestCheckpointTakesOverRun(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := partsOptions
	db := openOn(t, fs, opts)
	names := fillHeads(t, db)
	before := db.Stats().Checkpoints.Load()
	parts := checkpointInPartsWith(t, db, func(part int) {
		require.NotNil(t, db.ckpt)
		require.Positive(t, len(db.ckpt.series)-db.ckpt.next, "heads left to write")
		require.NoError(t, commitFloats(context.Background(), db, 30_000, 30, names...))
		checkpointNow(t, db)
		require.Nil(t, db.ckpt)
	})
	require.Equal(t, 1, parts, "the run stopped after the checkpoint that took over")
	require.Equal(t, before+1, db.Stats().Checkpoints.Load())
	require.Zero(t, logRecords(t, db))

	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	cdb := openClone(t, clone, opts)
	got := selectAll(t, cdb, -1<<62, 1<<62, nil, allSeries)
	require.Len(t, got, len(names))
	for _, n := range names {
		require.Len(t, got[lbls("__name__", n).String()], 31, n)
	}
}

// Close while a checkpoint in parts runs: the checkpointer stops between parts and Close's own
// checkpoint writes the rest, so the next open has no log to replay and every sample.
func TestCloseDuringCheckpointInParts(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := partsOptions
	db := openOn(t, fs, opts)
	names := fillHeads(t, db)
	closed := make(chan error, 1)
	parts := 0
	db.checkpointPartHook = func() { // on the checkpointer's goroutine, which Close waits for
		parts++
		if parts == 1 {
			go func() { closed <- db.Close() }()
			<-db.stop
		}
	}
	db.kickCheckpoint()
	require.NoError(t, <-closed)
	require.Equal(t, 1, parts, "the checkpointer stopped after the part it was in")
	require.Zero(t, logRecords(t, db), "Close's checkpoint wrote the heads and removed the log")

	db = openOn(t, fs, opts)
	got := selectAll(t, db, -1<<62, 1<<62, nil, allSeries)
	require.Len(t, got, len(names))
	for _, n := range names {
		require.Len(t, got[lbls("__name__", n).String()], 30, n)
	}
}

func TestCheckpointLogBytes(t *testing.T) {
	assert.Equal(t, int64(64), checkpointLogBytes(64, 0))
	assert.Equal(t, int64(800), checkpointLogBytes(64, 100))
	assert.Equal(t, int64(maxCheckpointLogBytes), checkpointLogBytes(64<<20, 200<<20))
	assert.Equal(t, int64(2<<30), checkpointLogBytes(2<<30, 1<<30), "a configured size past the bound is kept")
}

// The log between two checkpoints grows with what a checkpoint writes: with 1,000 open heads
// and CheckpointBytes far below what one round of them logs, the commits after a checkpoint run
// to eight times the heads' bytes before the next one, and every sample reads back.
func TestCheckpointLogGrowsWithHeads(t *testing.T) {
	db, fs := openMem(t, Options{CheckpointInterval: time.Hour, CheckpointBytes: 4 << 10})
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprint("m", i)
	}
	const rounds = 60
	var logged []int64 // log bytes before each commit
	var checkpointed []int
	for r := range rounds {
		logged = append(logged, db.log.bytes)
		before := db.Stats().Checkpoints.Load()
		require.NoError(t, commitFloats(context.Background(), db, int64(r)*15_000, float64(r), names...))
		waitCheckpoint(t, db)
		if db.Stats().Checkpoints.Load() > before {
			checkpointed = append(checkpointed, r)
		}
	}
	require.GreaterOrEqual(t, len(checkpointed), 2, "rounds that checkpointed: %v", checkpointed)
	// The first checkpoint comes at the first commit (its record is past 4 KiB); each head it
	// writes is 20 bytes or more, so the next waits for 8 x 20 kB of log at least.
	assert.Equal(t, 0, checkpointed[0])
	for i := 1; i < len(checkpointed); i++ {
		gap := checkpointed[i] - checkpointed[i-1]
		assert.Greater(t, gap, 3, "rounds between checkpoints: %v", checkpointed)
	}
	assert.GreaterOrEqual(t, db.checkpointAt, int64(checkpointLogRatio*len(names)*20))

	db = reopen(t, db, fs)
	for _, n := range names[:5] {
		require.Len(t, selectStrict(t, db, 0, rounds*15_000, nil, eq("__name__", n))[lbls("__name__", n).String()], rounds)
	}
}

// A querier created before a commit that cuts the head chunk still sees every sample of the
// cut chunk in a later Select: the head copy and the chunks come from one consistent view.
func TestSelectAcrossCutAfterQuerier(t *testing.T) {
	db, _ := openMem(t, Options{CheckpointInterval: time.Hour})
	ls := lbls("__name__", "m")
	all := floatRange(0, 120, 1)
	for _, s := range all[:119] {
		mustAppend(t, db, ls, s)
	}
	q, err := db.Querier(0, 1000)
	require.NoError(t, err)
	defer q.Close()
	mustAppend(t, db, ls, all[119:]...) // fills the chunk, cuts a new one
	set := q.Select(context.Background(), true, nil, eq("__name__", "m"))
	require.True(t, set.Next())
	got := readIter(t, set.At().Iterator(nil))
	requireSamples(t, all, got)
}

// Pebble's batches of the commit path are not synced: after a power loss that keeps only what
// was synced, the series, their index entries and the chunks cut since the last checkpoint are
// rebuilt from the (synced) sample log, under the refs the log names.
func TestReplayRebuildsSeriesAndChunks(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := Options{PartitionDuration: time.Hour, CheckpointInterval: time.Hour, SyncCommits: true}
	db := openOn(t, fs, opts)
	// One series stored by a checkpoint before the crash, so replay meets both kinds.
	old := lbls("__name__", "old", "job", "a")
	mustAppend(t, db, old, smp{T: 0, F: 1})
	db.writeMu.Lock()
	require.NoError(t, db.checkpointLocked(headsQuick))
	db.writeMu.Unlock()

	want := map[string][]smp{old.String(): {{T: 0, F: 1}}}
	for i := range 3 {
		ls := lbls("__name__", "m", "job", "a", "i", fmt.Sprint(i))
		for j := range 250 { // two chunks cut, the third open
			s := smp{T: int64(j) * 1000, F: float64(i*1000 + j)}
			mustAppend(t, db, ls, s)
			want[ls.String()] = append(want[ls.String()], s)
		}
	}
	mustAppend(t, db, old, smp{T: 1000, F: 2})
	want[old.String()] = append(want[old.String()], smp{T: 1000, F: 2})
	refs := map[uint64]labels.Labels{}
	db.series.byRef.each(func(s *memSeries) { refs[s.ref] = s.lset })

	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	cdb := openClone(t, clone, opts)
	requireSameSeries(t, want, selectAll(t, cdb, 0, 1<<40, nil, allSeries), "after replay")
	requireSameSeries(t, map[string][]smp{
		lbls("__name__", "m", "job", "a", "i", "1").String(): want[lbls("__name__", "m", "job", "a", "i", "1").String()],
	}, selectAll(t, cdb, 0, 1<<40, nil, eq("i", "1")), "the index entries are rebuilt")
	for ref, ls := range refs {
		s, err := cdb.getOrCreate(ls)
		require.NoError(t, err)
		require.Equal(t, ref, s.ref, "series %s keeps its ref", ls)
	}
	// A new series after the replay gets a ref of its own.
	mustAppend(t, cdb, lbls("__name__", "new"), smp{T: 1, F: 1})
	s, err := cdb.getOrCreate(lbls("__name__", "new"))
	require.NoError(t, err)
	require.NotContains(t, refs, s.ref)
	// And it all is stored: a clean reopen (no log left) gives the same.
	cdb = reopen(t, cdb, clone)
	want[lbls("__name__", "new").String()] = []smp{{T: 1, F: 1}}
	requireSameSeries(t, want, selectAll(t, cdb, 0, 1<<40, nil, allSeries), "after reopen")
}

// uvarintLen is the length binary.PutUvarint writes, around every 7-bit boundary.
func TestUvarintLen(t *testing.T) {
	var buf [binary.MaxVarintLen64]byte
	for shift := range 64 {
		for _, x := range []uint64{1<<shift - 1, 1 << shift, 1<<shift + 1} {
			require.Equal(t, binary.PutUvarint(buf[:], x), uvarintLen(x), "%d", x)
		}
	}
	require.Equal(t, binary.PutUvarint(buf[:], math.MaxUint64), uvarintLen(math.MaxUint64))
}

// readSegment gives the whole records of a segment in order and stops at the first one that is
// cut short or fails its checksum, whatever its header claims, without reading past the file.
func TestReadSegmentStopsAtTornRecord(t *testing.T) {
	fs := vfs.NewMem()
	l, _, err := openSampleLog(fs, "db", false)
	require.NoError(t, err)
	var recs [][]byte
	for i := range 5 {
		payload := make([]byte, 10+i*100_000) // records larger than the reader's buffer too
		for j := range payload {
			payload[j] = byte(i + j)
		}
		rec := frame(append(make([]byte, logHeaderLen), payload...))
		recs = append(recs, slices.Clone(rec)) // Pebble's MemFS scribbles over written buffers under -race
		require.NoError(t, l.write(rec))
	}
	name := l.name
	require.NoError(t, l.close())
	f, err := fs.Open(name)
	require.NoError(t, err)
	whole, err := io.ReadAll(f)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	read := func(data []byte) ([][]byte, error) {
		f, err := fs.Create("seg", vfs.WriteCategoryUnspecified)
		require.NoError(t, err)
		_, err = f.Write(slices.Clone(data)) // written buffers get scribbled over, see above
		require.NoError(t, err)
		require.NoError(t, f.Close())
		var got [][]byte
		_, err = readSegment(fs, "seg", func(p []byte) error {
			got = append(got, slices.Clone(p))
			return nil
		})
		return got, err
	}
	got, err := read(whole)
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i := range got {
		require.Equal(t, recs[i][logHeaderLen:], got[i])
	}

	end3 := len(recs[0]) + len(recs[1]) + len(recs[2])
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"cut in a header", whole[:end3+3]},
		{"cut in a payload", whole[:end3+logHeaderLen+50]},
		{"flipped checksum", flipByte(whole, end3+5)},
		{"flipped payload byte", flipByte(whole, end3+logHeaderLen+7)},
		{"length past the end", setLength(whole, end3, 1<<31)},
	} {
		got, err := read(tc.data)
		require.ErrorIs(t, err, errTornRecord, tc.name)
		require.Len(t, got, 3, tc.name)
	}
}

func flipByte(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0xff
	return c
}

func setLength(b []byte, at int, n uint32) []byte {
	c := slices.Clone(b)
	binary.LittleEndian.PutUint32(c[at:], n)
	return c
}

// A checkpoint applies its heads in parts that Pebble takes into its memtable: a part of half
// a memtable or more becomes a memtable of its own, flushed on its own, and with the small
// memtables of a small memory budget every part was one (TestCheckpointPartsFitMemTables).
func TestCheckpointPartBytes(t *testing.T) {
	assert.Equal(t, checkpointBatchBytes, checkpointPartBytes(64<<20))
	assert.Equal(t, checkpointBatchBytes, checkpointPartBytes(8<<20))
	for _, mt := range []uint64{2 << 20, 3 << 20, 6 << 20} {
		assert.LessOrEqual(t, checkpointPartBytes(mt), int(mt/8), "memtable %d", mt)
	}
}

// With 2 MiB memtables (the smallest memory budget's), a checkpoint of 8,000 heads of 100
// random values is flushed as memtables fill, not as one flush per part.
func TestCheckpointPartsFitMemTables(t *testing.T) {
	const memTable = 2 << 20
	db, _ := openMem(t, Options{MemTableSize: memTable, CheckpointInterval: time.Hour, CheckpointBytes: 1 << 30})
	names := make([]string, 8000)
	for i := range names {
		names[i] = fmt.Sprint("m", i)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for r := range 100 {
		require.NoError(t, commitFloats(context.Background(), db, int64(r)*15_000, rnd.Float64()*1e6, names...))
	}
	m := db.pdb.Metrics()
	flushes, l0 := m.Flush.Count, m.Levels[0].TablesFlushed
	checkpointNow(t, db)
	require.NoError(t, db.pdb.Flush())
	m = db.pdb.Metrics()
	// They fill 4 memtables, and one more may hold what the commits left; with 1 MiB parts it
	// took 7 flushes.
	assert.LessOrEqual(t, m.Flush.Count-flushes, int64(5), "flushes")
	assert.LessOrEqual(t, m.Levels[0].TablesFlushed-l0, uint64(5), "tables flushed")
}
