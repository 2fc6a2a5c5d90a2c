package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// logRecords counts the records of the sample log.
func logRecords(t *testing.T, db *DB) int {
	t.Helper()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{famLog}, UpperBound: []byte{famLog + 1}})
	require.NoError(t, err)
	n := 0
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	require.NoError(t, it.Close())
	return n
}

// Float samples committed are held by the log until a checkpoint writes the head chunks; a
// crash before that replays the log, and the replay checkpoints.
func TestLogReplayAfterCrash(t *testing.T) {
	fs := vfs.NewCrashableMem()
	opts := Options{PartitionDuration: time.Hour, CheckpointInterval: time.Hour}
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

	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0})
	cdb := openClone(t, clone, opts)
	requireSamples(t, want, selectStrict(t, cdb, 0, 1<<40, nil, eq("job", "a"))[ls.String()], "after replay")
	require.Zero(t, logRecords(t, cdb), "the replay checkpoints and deletes the log")
	require.Equal(t, int64(1), cdb.Stats().Checkpoints.Load())
	require.Equal(t, int64(299*1000), cdb.MaxTime())

	// The replayed head is appended to as before the crash.
	mustAppend(t, cdb, ls, smp{T: 300 * 1000, F: 300})
	require.Error(t, appendAll(t, cdb, ls, smp{T: 299 * 1000, F: 1})[0], "the replayed newest sample is known")
}

// A checkpoint writes the open heads and empties the log; Close checkpoints too, so a clean
// reopen replays nothing.
func TestCheckpoint(t *testing.T) {
	db, fs := openMem(t, Options{CheckpointInterval: time.Hour, CheckpointBytes: 64})
	ls := lbls("__name__", "m")
	for _, s := range floatRange(0, 19, 1) {
		mustAppend(t, db, ls, s)
	}
	require.Positive(t, db.Stats().Checkpoints.Load(), "64 bytes of log trigger a checkpoint")
	require.Less(t, logRecords(t, db), 20)

	db = reopen(t, db, fs)
	require.Zero(t, logRecords(t, db))
	requireSamples(t, floatRange(0, 19, 1), selectStrict(t, db, 0, 100, nil, eq("__name__", "m"))[ls.String()])
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
