package tsdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// The sample log. Writing the whole head chunk of every touched series on every commit costs one
// Pebble memtable insert per series per commit, which BenchmarkAppend measured at ~12× Prometheus's
// CPU per sample. Instead, each commit writes its float samples as one record of the w family, and
// the open float head chunks are written to their chunk keys only when they are cut and at a
// checkpoint, which also deletes the log. A reopened DB replays the log onto the stored chunks.
// Histogram heads are still written at every commit (they are rare, and the log holds floats only).
// Queries read the open head chunks from memory (Querier.headChunks).

const (
	// famLog keys: w | seq (8 bytes) -> samples; see appendLogSample.
	famLog byte = 'w'

	defaultCheckpointInterval = time.Minute
	defaultCheckpointBytes    = 8 << 20
)

func logKey(seq uint64) []byte { return putRef([]byte{famLog}, seq) }

// appendLogSample encodes one float sample: ref, t and st as varints, the value's 8 bytes.
func appendLogSample(b []byte, ref uint64, s sample) []byte {
	b = binary.AppendUvarint(b, ref)
	b = binary.AppendVarint(b, s.t)
	b = binary.AppendVarint(b, s.st)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(s.f))
}

func decodeLogRecord(v []byte, f func(ref uint64, s sample) error) error {
	for len(v) > 0 {
		ref, n := binary.Uvarint(v)
		if n <= 0 {
			return fmt.Errorf("%w: log record", errCorruptKey)
		}
		v = v[n:]
		t, n := binary.Varint(v)
		if n <= 0 {
			return fmt.Errorf("%w: log record", errCorruptKey)
		}
		v = v[n:]
		st, n := binary.Varint(v)
		if n <= 0 || len(v[n:]) < 8 {
			return fmt.Errorf("%w: log record", errCorruptKey)
		}
		v = v[n:]
		if err := f(ref, sample{st: st, t: t, f: math.Float64frombits(binary.LittleEndian.Uint64(v))}); err != nil {
			return err
		}
		v = v[8:]
	}
	return nil
}

// checkpointLocked writes every head chunk that holds samples only the log has, and deletes the
// log, in one synced batch. Caller holds writeMu.
func (db *DB) checkpointLocked() error {
	if db.failed != nil {
		return db.failed
	}
	if len(db.unsynced) == 0 && db.logBytes == 0 {
		return nil
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	var buf []byte
	for s := range db.unsynced {
		if s.head.chunk != nil && s.head.dirty {
			buf = encodeChunkValue(buf[:0], &s.head)
			_ = b.Set(chunkKey(nil, s.head.part, s.ref, s.head.mint), buf, nil)
		}
	}
	_ = b.DeleteRange(logKey(0), logKey(db.logSeq), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		db.failed = fmt.Errorf("checkpoint: %w", err)
		return db.failed
	}
	for s := range db.unsynced {
		s.head.dirty = false
	}
	clear(db.unsynced)
	db.logBytes = 0
	db.stats.Checkpoints.Add(1)
	return nil
}

// checkpointIfDue checkpoints when the log is older than the interval.
func (db *DB) checkpointIfDue() {
	if db.acquire() != nil {
		return
	}
	defer db.release()
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if db.logBytes == 0 || time.Since(db.logStart) < db.opts.CheckpointInterval {
		return
	}
	if err := db.checkpointLocked(); err != nil {
		db.logger.Warn("Checkpoint failed", zap.Error(err))
	}
}

// replayLog appends the logged samples that the stored chunks lack, then checkpoints. It runs
// in Open, before the DB is shared.
func (db *DB) replayLog() error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{famLog}, UpperBound: []byte{famLog + 1}})
	if err != nil {
		return err
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	var (
		records, replayed int
		maxT              = db.maxT.Load()
		buf               []byte
	)
	emit := func(c *chunkBuilder, ref uint64) {
		buf = encodeChunkValue(buf[:0], c)
		_ = b.Set(chunkKey(nil, c.part, ref, c.mint), buf, nil)
		c.dirty = false
	}
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 9 {
			_ = it.Close()
			return fmt.Errorf("%w: log key of %d bytes", errCorruptKey, len(it.Key()))
		}
		db.logSeq = binaryRef(it.Key()[1:]) + 1
		records++
		err := decodeLogRecord(it.Value(), func(ref uint64, smp sample) error {
			s, err := db.seriesForReplay(ref)
			if err != nil {
				return err
			}
			if err := db.loadHeadLocked(s); err != nil {
				return err
			}
			if smp.t <= s.maxT {
				return nil // already in a stored chunk
			}
			if err := s.head.append(smp, db.partition(smp.t), func(c *chunkBuilder) { emit(c, s.ref) }); err != nil {
				return err
			}
			s.maxT, s.last = smp.t, smp
			db.unsynced[s] = struct{}{}
			maxT = max(maxT, smp.t)
			replayed++
			return nil
		})
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("replay log record %d: %w", db.logSeq-1, err)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if records == 0 {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	db.maxT.Store(maxT)
	db.logBytes = 1 // make the checkpoint delete the log even if nothing was replayed
	if err := db.checkpointLocked(); err != nil {
		return err
	}
	db.logger.Info("Replayed the sample log", zap.Int("records", records), zap.Int("samples", replayed))
	return nil
}

// seriesForReplay finds the series of a logged ref; its labels were stored in the same batch.
func (db *DB) seriesForReplay(ref uint64) (*memSeries, error) {
	if s := db.series.getByRef(ref); s != nil {
		return s, nil
	}
	v, closer, err := db.pdb.Get(labelsByRefKey(nil, ref))
	if err != nil {
		return nil, fmt.Errorf("labels of series %d: %w", ref, err)
	}
	lset, err := decodeLabels(v)
	_ = closer.Close()
	if err != nil {
		return nil, err
	}
	s, err := db.getOrCreate(lset)
	if err != nil {
		return nil, err
	}
	if s.ref != ref {
		return nil, fmt.Errorf("series %d: labels resolve to series %d", ref, s.ref)
	}
	return s, nil
}
