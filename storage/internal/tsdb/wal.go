package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/zap"
)

// How samples become durable. Writing the whole head chunk of every touched series on every
// commit costs one Pebble memtable insert per series per commit (~12× Prometheus's CPU per
// sample in BenchmarkAppend). Instead each commit writes its float samples, and the labels of the
// series it creates, as one record of the sample log (samplelog.go), and its Pebble batch (cut
// chunks, series and index keys) without waiting for Pebble's WAL: everything in that batch can
// be rebuilt from the log. The open float head chunks are written to their chunk keys only when
// they are cut and at a checkpoint, whose synced Pebble batch makes every earlier batch durable
// before the log is removed. A reopened DB replays the log onto the stored chunks. Histogram
// heads, metadata and exemplars are not in the log: a commit that holds any of them waits for
// Pebble's WAL sync as before (they are rare). Queries read the open heads from memory
// (Querier.headChunks).

const (
	// A checkpoint rewrites every open head chunk that gained samples since the last one, so
	// its cost per sample falls as the interval grows, while the log to replay after a crash
	// grows (64 MiB is about 3.6 M samples, a few seconds of replay). At 100k series it costs
	// about 1.6 CPU-seconds: every 5 minutes, as before, that was a quarter of the CPU of
	// ingesting them at a 15 s scrape interval. The log (about 19 bytes a sample) fills 64 MiB in
	// about 9 minutes at that rate, so the bytes decide for large stores and the hour bounds small
	// ones. Power-loss durability does not wait for checkpoints: the log is fsynced every
	// defaultLogSyncInterval.
	defaultCheckpointInterval = time.Hour
	defaultCheckpointBytes    = 64 << 20
	defaultLogSyncInterval    = time.Minute

	// What a checkpoint writes grows with the open heads, the log between two checkpoints did
	// not: at 100k series a checkpoint wrote some 25 MB of heads for each 64 MiB of log, and at
	// 1M series it would write four times the log. The log therefore runs to
	// checkpointLogRatio times what the last checkpoint wrote when that is more than
	// CheckpointBytes (about a chunk's worth of samples a series: each head is written about once
	// for every eight bytes of log), up to maxCheckpointLogBytes, which bounds the replay after a
	// crash (about 20 s for 1 GiB on two cores) and the log's disk space.
	checkpointLogRatio    = 8
	maxCheckpointLogBytes = 1 << 30

	// checkpointBatchBytes is the size at which a checkpoint applies what it has so far, with
	// memtables of at least 8 MiB (checkpointPartBytes).
	checkpointBatchBytes = 1 << 20
)

// checkpointPartBytes is the size at which a checkpoint applies its batch: checkpointBatchBytes,
// or an eighth of a memtable when that is less. Pebble commits a batch that takes half a
// memtable (its entries' skiplist nodes included) as a memtable of its own, flushed on its
// own: with 2 MiB memtables (a 64 MiB memory budget) every 1 MiB part of a checkpoint was one,
// and 100k series wrote 5 GB for 20 M samples and stalled writes past their deadlines.
func checkpointPartBytes(memTableSize uint64) int {
	return int(min(checkpointBatchBytes, memTableSize/8))
}

// appendLogSample encodes one float sample: ref, t and st as varints, the value's 8 bytes.
func appendLogSample(b []byte, ref uint64, s sample) []byte {
	b = binary.AppendUvarint(b, ref)
	b = binary.AppendVarint(b, s.t)
	b = binary.AppendVarint(b, s.st)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(s.f))
}

func decodeLogSamples(v []byte, f func(ref uint64, s sample) error) error {
	for len(v) > 0 {
		ref, n := binary.Uvarint(v)
		if n <= 0 {
			return fmt.Errorf("%w: log samples", errCorruptKey)
		}
		v = v[n:]
		t, n := binary.Varint(v)
		if n <= 0 {
			return fmt.Errorf("%w: log samples", errCorruptKey)
		}
		v = v[n:]
		st, n := binary.Varint(v)
		if n <= 0 || len(v[n:]) < 8 {
			return fmt.Errorf("%w: log samples", errCorruptKey)
		}
		v = v[n:]
		if err := f(ref, sample{st: st, t: t, f: math.Float64frombits(binary.LittleEndian.Uint64(v))}); err != nil {
			return err
		}
		v = v[8:]
	}
	return nil
}

// logRecord collects one commit's log record. Series entries must precede the samples that
// name them, and the samples entry runs to the end of the payload, so the two are built apart
// and joined by frame.
type logRecord struct {
	series  []byte // framing header space, then series entries
	samples []byte // sample encodings
}

func (r *logRecord) reset() {
	if cap(r.series) < logHeaderLen {
		r.series = make([]byte, logHeaderLen, 4096)
	}
	r.series = r.series[:logHeaderLen]
	r.samples = r.samples[:0]
}

func (r *logRecord) empty() bool { return len(r.series) == logHeaderLen && len(r.samples) == 0 }

func (r *logRecord) addSeries(ref uint64, lset labels.Labels) {
	r.series = append(r.series, entrySeries)
	r.series = binary.AppendUvarint(r.series, ref)
	// The labels are encoded in place after their length, computed first: a new series costs
	// the record no buffer of its own.
	n := 0
	lset.Range(func(l labels.Label) {
		n += uvarintLen(uint64(len(l.Name))) + len(l.Name) + uvarintLen(uint64(len(l.Value))) + len(l.Value)
	})
	r.series = binary.AppendUvarint(r.series, uint64(n))
	r.series = encodeLabels(r.series, lset)
}

func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// framed returns the whole record, ready to write.
func (r *logRecord) framed() []byte {
	rec := r.series
	if len(r.samples) > 0 {
		rec = append(rec, entrySamples)
		rec = append(rec, r.samples...)
		r.series = rec // keep the grown buffer
	}
	return frame(rec)
}

// How a checkpoint stores the open float heads: quick copies their bytes as they are
// (periodic checkpoints, whose copies the next checkpoint or cut replaces), packed encodes
// them in the packed layout, as small as cut chunks (a clean close, and when disk space runs
// short).
const (
	headsQuick  = false
	headsPacked = true
)

// checkpointLocked writes every head chunk that holds samples only the log has, then a synced
// batch, which also makes every earlier unsynced batch durable (Pebble's WAL is written in
// order), and removes the log. Caller holds writeMu.
func (db *DB) checkpointLocked(packed bool) error {
	cp, err := db.beginCheckpointLocked(packed)
	if err != nil {
		return err
	}
	return cp.finish(db)
}

// pendingCheckpoint is a checkpoint whose heads are applied and whose final batch may not yet
// be synced.
type pendingCheckpoint struct {
	b   *pebble.Batch // nil when there was nothing to write
	old []string      // the log segments to remove once b is synced
}

// beginCheckpointLocked writes the heads and applies the checkpoint's final batch under writeMu,
// all at once: it takes over the heads of a checkpoint in parts that has not finished (whose
// segments it removes too: they are older than its own rotation). The returned checkpoint's
// finish waits for the sync and removes the older segments; it may run without writeMu, so that
// commits go on while the WAL syncs. Caller holds writeMu.
func (db *DB) beginCheckpointLocked(packed bool) (*pendingCheckpoint, error) {
	if err := db.brokenErr(); err != nil {
		return nil, err
	}
	run := db.ckpt
	if run == nil && len(db.unsynced) == 0 && db.log.bytes == 0 && !db.legacyLog {
		return &pendingCheckpoint{}, nil
	}
	// The heads stay listed (and the run set) until they are written: queries read the dirty
	// heads of listed series from memory.
	var written int64
	if run != nil {
		_, w, err := db.writeHeadsLocked(run.series[run.next:], packed, false)
		written += run.written + w
		if err != nil {
			return nil, err
		}
	}
	_, w, err := db.writeHeadsLocked(db.unsynced, packed, false)
	written += w
	if err != nil {
		return nil, err
	}
	db.headMu.Lock()
	db.ckpt = nil
	clear(db.unsynced) // no pointers kept to series head collection may drop
	db.unsynced = db.unsynced[:0]
	db.headMu.Unlock()
	b, err := db.applyCheckpointEnd()
	if err != nil {
		return nil, err
	}
	db.checkpointAt = checkpointLogBytes(db.opts.CheckpointBytes, written)
	return &pendingCheckpoint{b: b, old: db.rotateLog()}, nil
}

// A checkpoint in parts writes the heads a part (checkpointPartBytes) at a time under writeMu,
// so that commits go on between parts: written all at once, 100k heads held every sender for
// about 100 ms, and what a checkpoint writes grows with the series. It begins by starting a new
// log segment and taking the list of heads that hold samples only the log has; every record of
// the older segments is in one of those heads, or in a chunk cut from it since (the cut's
// commit batch is applied before the checkpoint's final synced batch). A commit between parts
// that appends to a head not yet written leaves it listed for this checkpoint (its unsynced
// flag is still set), which writes it with the new samples; one that appends to a head
// already written lists it anew for the next. Either way the sample is in the new segment too.
// Only the checkpointer goroutine runs checkpoints in parts; a checkpoint under writeMu
// (beginCheckpointLocked) takes over the rest of one that runs.
type checkpointRun struct {
	series  []*memSeries // the heads to write; those before next are written
	next    int
	old     []string // the log segments before the run's rotation
	written int64    // bytes of heads written so far
}

// startCheckpointRunLocked begins a checkpoint in parts: a new log segment, and the list of
// heads to write taken over from db.unsynced, which starts empty. Caller holds writeMu.
func (db *DB) startCheckpointRunLocked() *checkpointRun {
	run := &checkpointRun{old: db.rotateLog()}
	// Queries read the dirty heads of listed series from memory: the list moves to the run,
	// which they see, in one step.
	db.headMu.Lock()
	run.series, db.unsynced = db.unsynced, nil
	db.ckpt = run
	db.headMu.Unlock()
	return run
}

// rotateLog starts a new log segment and returns the ones before it, which the checkpoint
// removes once it is durable. Caller holds writeMu.
func (db *DB) rotateLog() []string {
	old, err := db.log.rotate()
	if err != nil {
		db.logger.Warn("Listing sample log segments failed; they are removed at the next checkpoint", zap.Error(err))
	}
	return old
}

// kickCheckpoint asks the checkpointer for a checkpoint in parts, unless one is asked for or
// running.
func (db *DB) kickCheckpoint() {
	if db.ckptAsked.CompareAndSwap(false, true) {
		db.ckptKick <- struct{}{} // never blocks: only the winner of the swap sends, and the checkpointer empties it before clearing the flag
	}
}

// waitCheckpointInParts asks the checkpointer for a checkpoint in parts and waits until it is
// done (the one that runs, when one does), or until the DB closes. Caller holds no lock.
func (db *DB) waitCheckpointInParts() {
	db.kickCheckpoint()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for db.ckptAsked.Load() {
		select {
		case <-db.stop:
			return // the checkpointer stops, maybe before it takes the request
		case <-tick.C:
		}
	}
}

// checkpointer runs the checkpoints that commits and the checkpoint interval ask for, in parts.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	for {
		select {
		case <-db.stop:
			return
		case <-db.ckptKick:
			if err := db.checkpointInParts(); err != nil {
				db.logger.Warn("Checkpoint failed", zap.Error(err))
			}
			db.ckptAsked.Store(false)
		}
	}
}

// checkpointInParts runs one checkpoint in parts (checkpointRun). When the DB closes meanwhile it
// stops between parts: Close's checkpoint takes over.
func (db *DB) checkpointInParts() error {
	if db.acquire() != nil {
		return nil
	}
	defer db.release()
	db.writeMu.Lock()
	// A store that refuses writes writes no heads either (freeLogSpace checkpoints to free the
	// log's space, with a reserve for them); the next commit asks again.
	if ok, _ := db.Writable(); !ok || db.log.bytes == 0 || db.ckpt != nil {
		db.writeMu.Unlock()
		return nil
	}
	if db.legacyLog {
		// The log records an older version kept in Pebble (replay removes them at Open, so
		// this is defensive): the checkpoint under writeMu deletes them.
		cp, err := db.beginCheckpointLocked(headsQuick)
		db.writeMu.Unlock()
		if err == nil {
			err = cp.finish(db)
		}
		return err
	}
	run := db.startCheckpointRunLocked()
	for {
		n, w, err := db.writeHeadsLocked(run.series[run.next:], headsQuick, true)
		clear(run.series[run.next : run.next+n]) // no pointers kept to series head collection may drop
		run.next += n
		run.written += w
		if err != nil {
			db.writeMu.Unlock()
			return err
		}
		if run.next == len(run.series) {
			break
		}
		db.writeMu.Unlock()
		if db.checkpointPartHook != nil {
			db.checkpointPartHook()
		}
		select {
		case <-db.stop:
			return nil
		default:
		}
		db.writeMu.Lock()
		if db.ckpt != run {
			db.writeMu.Unlock()
			return nil // a checkpoint under writeMu took over
		}
	}
	db.headMu.Lock()
	db.ckpt = nil
	db.headMu.Unlock()
	b, err := db.applyCheckpointEnd()
	if err == nil {
		db.checkpointAt = checkpointLogBytes(db.opts.CheckpointBytes, run.written)
	}
	db.writeMu.Unlock()
	if err != nil {
		return err
	}
	return (&pendingCheckpoint{b: b, old: run.old}).finish(db)
}

// writeHeadsLocked writes the open heads of the series in list that hold samples only the log
// has, in batches applied without a sync once they hold checkpointPartBytes (one batch of every
// head, tens of MB at 100k series, was a spike of that much memory), and marks them clean.
// With onePart it returns after the first batch it applies. It returns how many of list it
// took and the bytes it wrote. Caller holds writeMu.
func (db *DB) writeHeadsLocked(list []*memSeries, packed, onePart bool) (n int, written int64, err error) {
	var buf, key []byte
	b := db.pdb.NewBatch()
	done := 0 // list[:done] are applied and marked clean
	for n < len(list) {
		s := list[n]
		n++
		if !s.unsynced || !s.head.open() || !s.head.dirty {
			continue
		}
		if packed {
			buf = db.encodeStored(buf[:0], &s.head, &db.decimal)
		} else {
			buf = encodeChunkValue(buf[:0], &s.head)
		}
		key = chunkKey(key[:0], s.head.part, s.ref, s.head.mint) // the batch copies it
		_ = b.Set(key, buf, nil)
		written += int64(len(key) + len(buf))
		if b.Len() < checkpointPartBytes(db.opts.MemTableSize) {
			continue
		}
		if err := db.applyHeads(b, list[done:n], packed); err != nil {
			return n, written, err
		}
		done = n
		if onePart {
			return n, written, nil
		}
		b = db.pdb.NewBatch()
	}
	return n, written, db.applyHeads(b, list[done:n], packed)
}

// applyHeads applies b, which holds the heads of the listed series that were dirty, without a
// sync (the checkpoint's final batch syncs it), closes it, and marks those series clean. The
// heads are clean once their copies are applied: a query that copies a head still marked dirty
// meanwhile finds the same chunk in its snapshot, and the head replaces it.
func (db *DB) applyHeads(b *pebble.Batch, listed []*memSeries, packed bool) error {
	var err error
	if !b.Empty() {
		err = db.pdb.Apply(b, pebble.NoSync)
	}
	_ = b.Close()
	if err != nil {
		return db.setBroken(fmt.Errorf("checkpoint: %w", err))
	}
	db.headMu.Lock()
	for _, s := range listed {
		if s.unsynced {
			if s.head.open() && s.head.dirty {
				s.head.quickStored = !packed && isFloatChunk(s.head.chunk())
			}
			s.head.dirty = false
			s.unsynced = false
		}
	}
	db.headMu.Unlock()
	return nil
}

// applyCheckpointEnd applies a checkpoint's final batch, whose sync makes every batch before it
// durable, and deletes the log records an older version kept in Pebble. Caller holds writeMu.
func (db *DB) applyCheckpointEnd() (*pebble.Batch, error) {
	b := db.pdb.NewBatch()
	if db.legacyLog {
		_ = b.DeleteRange([]byte{famLog}, []byte{famLog + 1}, nil)
	}
	// A record in Pebble's WAL even when there is no head to write, so that the sync covers the
	// unsynced batches before it.
	_ = b.LogData([]byte("checkpoint"), nil)
	if err := db.pdb.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		_ = b.Close()
		return nil, db.setBroken(fmt.Errorf("checkpoint: %w", err))
	}
	db.legacyLog = false
	return b, nil
}

// checkpointLogBytes is the size of the sample log at which the next checkpoint runs, after one
// that wrote written bytes of heads: least the configured size, at most maxCheckpointLogBytes
// (or the configured size, if larger).
func checkpointLogBytes(least, written int64) int64 {
	return max(least, min(checkpointLogRatio*written, maxCheckpointLogBytes))
}

// packQuickHeadsLocked stores in the packed layout every open head of ss whose stored copy is
// a quick checkpoint's and that has gained nothing since (the next checkpoint writes one that
// has). It runs where a stored head may stay as it is for long: at a clean close, and before
// head collection forgets a series. The batch is not synced: a crash leaves the quick copies,
// which hold the same samples. Caller holds writeMu.
func (db *DB) packQuickHeadsLocked(ss iter.Seq[*memSeries]) error {
	b := db.pdb.NewBatch()
	var buf, key []byte
	var done []*memSeries
	for s := range ss {
		if !s.loaded || s.removed || !s.head.open() || !s.head.quickStored || s.head.dirty {
			continue
		}
		done = append(done, s)
		buf = db.encodeStored(buf[:0], &s.head, &db.decimal)
		if chunkenc.Encoding(buf[0]) != encPacked {
			continue // floats that do not pack: the stored XOR copy is the right one
		}
		key = chunkKey(key[:0], s.head.part, s.ref, s.head.mint) // the batch copies it
		_ = b.Set(key, buf, nil)
		var err error
		if b, err = db.applyFullPart(b); err != nil {
			return err
		}
	}
	err := db.pdb.Apply(b, pebble.NoSync)
	_ = b.Close()
	if err != nil {
		return err
	}
	db.headMu.Lock()
	for _, s := range done {
		s.head.quickStored = false
	}
	db.headMu.Unlock()
	return nil
}

// applyFullPart applies b without a sync once it holds checkpointPartBytes, and returns the
// batch to go on with (b, or a new one). Heads are written in parts: one batch of every head
// (tens of MB at 100k series) was a spike of that much memory. On an error b is closed.
func (db *DB) applyFullPart(b *pebble.Batch) (*pebble.Batch, error) {
	if b.Len() < checkpointPartBytes(db.opts.MemTableSize) {
		return b, nil
	}
	err := db.pdb.Apply(b, pebble.NoSync)
	_ = b.Close()
	if err != nil {
		return nil, err
	}
	return db.pdb.NewBatch(), nil
}

// finish waits for the checkpoint's sync and removes the log segments it made redundant.
func (cp *pendingCheckpoint) finish(db *DB) error {
	if cp.b == nil {
		return nil
	}
	err := cp.b.SyncWait()
	_ = cp.b.Close()
	if err != nil {
		// Pebble's WAL failed: its log writer keeps the error, and every later write to it
		// fails (or panics). The heads were marked clean, but the log segments are kept, so
		// nothing is lost: the next Open replays them.
		return db.setBroken(fmt.Errorf("checkpoint: %w", err))
	}
	if err := db.log.remove(cp.old); err != nil {
		// Everything is durable in Pebble; a segment left behind is replayed once more at the
		// next open, harmlessly.
		db.logger.Warn("Removing sample log segments failed", zap.Error(err))
	}
	db.stats.Checkpoints.Add(1)
	return nil
}

// checkpointIfDue asks for a checkpoint when the log is older than the checkpoint interval,
// and otherwise fsyncs it when its last sync is older than the sync interval.
func (db *DB) checkpointIfDue() {
	if db.acquire() != nil {
		return
	}
	defer db.release()
	db.writeMu.Lock()
	if ok, _ := db.Writable(); !ok || db.log.bytes == 0 {
		db.writeMu.Unlock()
		return
	}
	if time.Since(db.logStart) >= db.opts.CheckpointInterval {
		if db.ckpt == nil {
			db.kickCheckpoint()
		}
		db.writeMu.Unlock()
		return
	}
	if time.Since(db.log.syncedAt) < db.opts.LogSyncInterval {
		db.writeMu.Unlock()
		return
	}
	err := db.log.syncNow()
	if err == nil {
		db.writeMu.Unlock()
		return
	}
	// The log's pages may be gone with the failed fsync: a checkpoint makes what it holds
	// durable in Pebble instead, and starts a new segment.
	db.logger.Warn("Syncing the sample log failed; checkpointing instead", zap.Error(err))
	cp, err := db.beginCheckpointLocked(headsQuick)
	db.writeMu.Unlock()
	if err == nil {
		err = cp.finish(db)
	}
	if err != nil {
		db.logger.Warn("Checkpoint failed", zap.Error(err))
	}
}

// freeLogSpace checkpoints early when the free-space reserve is what refuses writes and the
// sample log holds a good part of the used space: a checkpoint writes the heads (a few hundred
// bytes a series) and deletes the log, which on a small volume is most of what fills it. It
// runs only while at least half the reserve is free, so that Pebble has room for the heads.
func (db *DB) freeLogSpace() {
	if !db.guard.shortOfSpace() {
		return
	}
	if db.acquire() != nil {
		return
	}
	defer db.release()
	db.writeMu.Lock()
	du, err := db.opts.FS.GetDiskUsage(db.dir)
	if err != nil || db.log.bytes < spaceCheckBytes || du.AvailBytes < db.Reserve()/2 {
		db.writeMu.Unlock()
		return
	}
	logBytes := db.log.bytes
	cp, err := db.beginCheckpointLocked(headsPacked) // short of space: the smaller copies
	db.writeMu.Unlock()
	if err == nil {
		err = cp.finish(db)
	}
	if err != nil {
		db.logger.Warn("Checkpoint to free the sample log's space failed", zap.Error(err))
		return
	}
	db.logger.Info("Checkpointed early to free the sample log's space", zap.Int64("log_bytes", logBytes))
	db.guard.mu.Lock()
	db.guard.checkSpaceLocked(time.Now(), true)
	db.guard.mu.Unlock()
}

// replay holds the state of one replay of the log.
type replay struct {
	db       *DB
	b        *pebble.Batch
	postings postingListWriter // the index entries of b
	buf      []byte
	maxT     int64
	replayed int
	skipped  int // samples of series the log does not name (after a torn record)
}

// replayLog appends the logged samples that the stored chunks lack, then checkpoints. It runs
// in Open, before the DB is shared.
func (db *DB) replayLog(segments []string) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	r := &replay{db: db, b: db.pdb.NewBatch(), maxT: db.maxT.Load()}
	defer r.b.Close()
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		return err
	}
	db.replayIt = it // see readIter
	defer func() {
		db.replayIt = nil
		_ = it.Close()
	}()

	records, err := db.replayLegacyLog(r)
	if err != nil {
		return err
	}
	for i, seg := range segments {
		n, err := readSegment(db.opts.FS, seg, r.record)
		records += n
		switch {
		case errors.Is(err, errTornRecord):
			// A crash while a record was written (or a power loss before the segment was
			// synced): the records before it are whole; nothing after it was acknowledged
			// unless the log was not synced and the machine lost power.
			db.logger.Warn("Sample log segment ends in a torn record; replayed the records before it",
				zap.String("segment", seg), zap.Int("records", n), zap.Bool("last_segment", i == len(segments)-1))
		case err != nil:
			return fmt.Errorf("replay %s: %w", seg, err)
		}
	}
	if records == 0 && len(segments) == 0 {
		return nil
	}
	r.postings.writeTo(r.b)
	if err := r.b.Commit(pebble.Sync); err != nil {
		return err
	}
	db.maxT.Store(r.maxT)
	db.log.bytes = 1 // make the checkpoint remove the segments even if nothing was replayed
	if err := db.checkpointLocked(headsQuick); err != nil {
		return err
	}
	fields := []zap.Field{zap.Int("records", records), zap.Int("samples", r.replayed)}
	if r.skipped > 0 {
		fields = append(fields, zap.Int("samples_of_unknown_series", r.skipped))
		db.logger.Warn("Replayed the sample log; some samples name series it lost", fields...)
	} else {
		db.logger.Info("Replayed the sample log", fields...)
	}
	return nil
}

// replayLegacyLog replays w records left in Pebble by the version that kept the log there.
func (db *DB) replayLegacyLog(r *replay) (int, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{famLog}, UpperBound: []byte{famLog + 1}})
	if err != nil {
		return 0, err
	}
	records := 0
	for it.First(); it.Valid(); it.Next() {
		records++
		if err := decodeLogSamples(it.Value(), r.sample); err != nil {
			_ = it.Close()
			return records, fmt.Errorf("replay log key %x: %w", it.Key(), err)
		}
	}
	if err := it.Close(); err != nil {
		return records, err
	}
	db.legacyLog = records > 0
	return records, nil
}

// record replays one record's payload.
func (r *replay) record(p []byte) error {
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]
		switch kind {
		case entrySeries:
			ref, n := binary.Uvarint(p)
			if n <= 0 {
				return fmt.Errorf("%w: log series entry", errCorruptKey)
			}
			p = p[n:]
			size, n := binary.Uvarint(p)
			if n <= 0 || uint64(len(p[n:])) < size {
				return fmt.Errorf("%w: log series entry", errCorruptKey)
			}
			lset, err := decodeLabels(p[n : n+int(size)])
			if err != nil {
				return err
			}
			p = p[n+int(size):]
			if err := r.db.replaySeries(ref, lset); err != nil {
				return err
			}
		case entrySamples:
			return decodeLogSamples(p, r.sample)
		default:
			return fmt.Errorf("%w: log entry kind %d", errCorruptKey, kind)
		}
	}
	return nil
}

// sample replays one logged float sample onto its series' head.
func (r *replay) sample(ref uint64, smp sample) error {
	db := r.db
	s, err := db.seriesForReplay(ref)
	if err != nil {
		return err
	}
	if s == nil {
		r.skipped++
		return nil
	}
	if err := db.loadHeadLocked(s); err != nil {
		return err
	}
	if smp.t <= s.maxT() {
		return nil // already in a stored chunk
	}
	part := db.partition(smp.t)
	db.ensurePersisted(r.b, s)
	if err := db.ensureIndexed(r.b, &r.postings, s, part); err != nil {
		return err
	}
	emit := func(c *chunkBuilder) {
		db.noteCut(s.ref, c, smp.t, part)
		r.buf = db.encodeStored(r.buf[:0], c, &db.decimal)
		_ = r.b.Set(chunkKey(nil, c.part, s.ref, c.mint), r.buf, nil)
		c.dirty = false
	}
	if err := s.head.append(smp, part, emit); err != nil {
		return err
	}
	s.last = smp
	db.markUnsynced(s)
	r.maxT = max(r.maxT, smp.t)
	r.replayed++
	return nil
}

// replaySeries registers a series named by the log. When its keys did not reach Pebble before
// a crash, it is created in memory under its logged ref, and the samples replayed after it
// write its keys again.
func (db *DB) replaySeries(ref uint64, lset labels.Labels) error {
	if db.series.getByRef(ref) != nil {
		return nil
	}
	if _, found, err := db.storedLabels(ref); err != nil || found {
		return err // stored: seriesForReplay loads it when a sample names it
	}
	s := &memSeries{ref: ref, lset: lset, last: noSample, loaded: true}
	db.series.add(s, lset.Hash())
	if ref > db.nextRef.Load() {
		db.nextRef.Store(ref)
	}
	return nil
}

// seriesForReplay finds the series of a logged ref: in memory (created or loaded by an earlier
// record), or stored. It returns nil when neither knows the ref.
func (db *DB) seriesForReplay(ref uint64) (*memSeries, error) {
	if s := db.series.getByRef(ref); s != nil {
		return s, nil
	}
	lset, found, err := db.storedLabels(ref)
	if err != nil {
		return nil, fmt.Errorf("labels of series %d: %w", ref, err)
	}
	if !found {
		return nil, nil
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
