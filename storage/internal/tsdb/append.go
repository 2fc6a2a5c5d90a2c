package tsdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.uber.org/zap"
)

// Appender buffers samples, metadata and exemplars and writes them in one Pebble batch on
// Commit. It validates each sample on Append, so the caller learns at once which samples are
// rejected; a sample that was valid on Append but raced with another commit is handled on
// Commit (merged if it falls in the out-of-order window, otherwise dropped and counted).
// An Appender is not safe for concurrent use and must not be reused after Commit or Rollback.
type Appender struct {
	db        *DB
	samples   []pendingSample
	meta      map[string]metadata.Metadata
	exemplars []pendingExemplar

	// Samples valid on Append that a concurrent commit made invalid before this Commit (pushed
	// out of the out-of-order window, or a different value at the same timestamp).
	refusedAtCommit int
	firstRefused    error
}

type pendingSample struct {
	s   *memSeries
	smp sample
}

type pendingExemplar struct {
	s *memSeries
	e exemplar.Exemplar
}

var _ storage.AppenderV2 = (*Appender)(nil)

// AppenderV2 returns a new appender.
func (db *DB) AppenderV2(context.Context) storage.AppenderV2 { return db.NewAppender() }

// NewAppender returns a new appender.
func (db *DB) NewAppender() *Appender { return &Appender{db: db} }

// Append implements storage.AppenderV2. It never fails for a metadata or exemplar problem:
// those are reported as *storage.AppendPartialError after the sample was buffered.
func (a *Appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	s, err := a.series(ref, ls)
	if err != nil {
		return 0, err
	}
	smp := sample{st: st, t: t, f: v, h: h, fh: fh}
	if err := validateHistogram(smp); err != nil {
		a.db.stats.RejectedInvalid.Add(1)
		return 0, err
	}
	if err := a.admit(s, smp, opts.RejectOutOfOrder); err != nil {
		if errors.Is(err, errIgnoredDuplicate) {
			return storage.SeriesRef(s.ref), nil
		}
		return 0, err
	}
	if a.samples == nil {
		a.samples = a.db.getSampleBuf()
	}
	a.samples = append(a.samples, pendingSample{s: s, smp: smp})
	a.addMetadata(s.lset, opts.MetricFamilyName, opts.Metadata)
	if len(opts.Exemplars) > 0 {
		var partial *storage.AppendPartialError
		for i, e := range opts.Exemplars {
			if !e.HasTs {
				e.Ts = t // as addExemplar documents: the exemplar takes its sample's timestamp
			}
			if err := a.addExemplar(s, e); err != nil {
				if partial == nil {
					partial = &storage.AppendPartialError{}
				}
				partial.ExemplarErrors = append(partial.ExemplarErrors, storage.ExemplarError{Index: i, Err: err})
			}
		}
		if err := partial.ToError(); err != nil {
			return storage.SeriesRef(s.ref), err
		}
	}
	return storage.SeriesRef(s.ref), nil
}

// series resolves the series of a sample, preferring the caller's ref when it still names ls.
func (a *Appender) series(ref storage.SeriesRef, ls labels.Labels) (*memSeries, error) {
	if ref != 0 {
		if s := a.db.series.getByRef(uint64(ref)); s != nil && (ls.IsEmpty() || labels.Equal(s.lset, ls)) {
			return s, nil
		}
	}
	if ls.IsEmpty() {
		a.db.stats.RejectedInvalid.Add(1)
		return nil, fmt.Errorf("empty label set: %w", ErrInvalidSample)
	}
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		a.db.stats.RejectedInvalid.Add(1)
		return nil, fmt.Errorf("label name %q is not unique: %w", name, ErrInvalidSample)
	}
	if err := a.db.acquire(); err != nil {
		return nil, err
	}
	defer a.db.release()
	return a.db.getOrCreateLimited(ls, true)
}

func validateHistogram(s sample) error {
	switch {
	case s.fh != nil:
		return s.fh.Validate()
	case s.h != nil:
		return s.h.Validate()
	}
	return nil
}

// errIgnoredDuplicate marks a sample equal to the one already stored at its timestamp.
var errIgnoredDuplicate = errors.New("duplicate sample with the same value")

// admit decides whether smp can be appended to s: in order, out of order within the window,
// a harmless duplicate (errIgnoredDuplicate), or rejected with Prometheus's sentinel errors.
func (a *Appender) admit(s *memSeries, smp sample, rejectOOO bool) error {
	if err := a.db.acquire(); err != nil {
		return err
	}
	defer a.db.release()
	if err := a.db.ensureLoaded(s); err != nil {
		return fmt.Errorf("load series head: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maxT, last := s.maxT, s.last
	if s.pendingBy == a && s.pending.t >= maxT {
		maxT, last = s.pending.t, s.pending
	}
	if err := a.db.checkSample(smp, maxT, last, rejectOOO); err != nil {
		return err
	}
	// Remember the newest buffered sample so that the next one of this appender is checked
	// against it. Another appender may take the slot over; the loser's later samples are then
	// checked at commit instead.
	if s.pendingBy != a || smp.t > s.pending.t {
		s.pendingBy, s.pending = a, smp
	}
	return nil
}

// checkSample classifies a sample against its series' newest sample (maxT, last).
func (db *DB) checkSample(smp sample, maxT int64, last sample, rejectOOO bool) error {
	dbMaxT := db.maxT.Load()
	if db.opts.Retention > 0 && dbMaxT != math.MinInt64 && smp.t < dbMaxT-db.opts.Retention.Milliseconds() {
		db.stats.RejectedTooOld.Add(1)
		return storage.ErrTooOldSample
	}
	switch {
	case maxT == math.MinInt64 || smp.t > maxT:
		return nil
	case smp.t == maxT:
		if smp.sameValue(last) {
			return errIgnoredDuplicate
		}
		db.stats.RejectedDuplicate.Add(1)
		return storage.ErrDuplicateSampleForTimestamp
	case rejectOOO || db.opts.OutOfOrderWindow <= 0:
		db.stats.RejectedOutOfOrder.Add(1)
		return storage.ErrOutOfOrderSample
	case smp.t < max(dbMaxT, maxT)-db.opts.OutOfOrderWindow.Milliseconds():
		db.stats.RejectedTooOld.Add(1)
		return storage.ErrTooOldSample
	}
	return nil
}

func (a *Appender) addMetadata(ls labels.Labels, family string, m metadata.Metadata) {
	if m == (metadata.Metadata{}) {
		return
	}
	if family == "" {
		family = ls.Get(labels.MetricName)
	}
	if family == "" {
		return
	}
	a.db.metaMu.RLock()
	cur, ok := a.db.meta[family]
	a.db.metaMu.RUnlock()
	if ok && cur == m {
		return
	}
	if a.meta == nil {
		a.meta = map[string]metadata.Metadata{}
	}
	a.meta[family] = m
}

// Commit writes everything buffered in one Pebble batch, synced to the WAL before it returns.
func (a *Appender) Commit() error {
	defer a.reset()
	if len(a.samples) == 0 && len(a.meta) == 0 && len(a.exemplars) == 0 {
		return nil
	}
	db := a.db
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()

	db.writeMu.Lock()
	if db.failed != nil {
		db.writeMu.Unlock()
		return db.failed
	}
	b, ooo, needSync, err := db.writeInOrder(a)
	if err != nil {
		// Heads may already hold samples of the discarded batch: memory and disk disagree.
		db.failed = fmt.Errorf("encode batch: %w", err)
		db.writeMu.Unlock()
		_ = b.Close()
		return db.failed
	}
	// The log record first: the batch only holds what the log can rebuild, or waits for
	// Pebble's WAL sync (needSync), so a crash between the two loses nothing acknowledged.
	if !db.logRec.empty() {
		if db.log.bytes == 0 {
			db.logStart = time.Now()
		}
		if err := db.log.write(db.logRec.framed()); err != nil {
			db.failed = err
			db.writeMu.Unlock()
			_ = b.Close()
			return db.failed
		}
	}
	if needSync {
		err = db.pdb.ApplyNoSyncWait(b, pebble.Sync)
	} else if !b.Empty() {
		err = db.pdb.Apply(b, pebble.NoSync)
	}
	if err != nil {
		db.failed = fmt.Errorf("commit batch: %w", err)
		db.writeMu.Unlock()
		_ = b.Close()
		return db.failed
	}
	db.publishMetadata(a.meta)
	if len(ooo) > 0 {
		err = db.writeOutOfOrder(ooo)
	}
	var cp *pendingCheckpoint
	if err == nil && db.log.bytes >= db.opts.CheckpointBytes {
		cp, err = db.beginCheckpointLocked()
	}
	db.writeMu.Unlock()
	if cp != nil {
		// Outside writeMu: other commits go on while Pebble's WAL syncs the heads.
		err = errors.Join(err, cp.finish(db, false))
	}
	if needSync {
		// Wait for the fsync outside writeMu, so concurrent commits share one WAL sync.
		err = errors.Join(err, b.SyncWait())
	}
	err = errors.Join(err, b.Close())
	if err == nil && a.refusedAtCommit > 0 {
		// The rest is stored; say so rather than acknowledge the refused samples. A retry
		// rejects them one by one on Append.
		err = fmt.Errorf("%d samples refused at commit, the others stored; first: %w", a.refusedAtCommit, a.firstRefused)
	}
	return err
}

// writeInOrder encodes the buffered in-order samples into head chunks and returns the batch to
// apply, the samples that must be merged out of order, and whether the batch holds anything the
// sample log cannot rebuild (histograms, metadata, exemplars), so that it must be synced. The
// commit's log record is left in db.logRec. Caller holds writeMu.
func (db *DB) writeInOrder(a *Appender) (b *pebble.Batch, ooo []pendingSample, needSync bool, err error) {
	b = db.pdb.NewBatch()
	var (
		dirty []*memSeries
		buf   []byte
		maxT  = db.maxT.Load()
		added int64
		rec   = &db.logRec
	)
	rec.reset()
	emit := func(c *chunkBuilder, ref uint64) {
		buf = encodeChunkValue(buf[:0], c)
		_ = b.Set(chunkKey(nil, c.part, ref, c.mint), buf, nil)
		c.dirty = false
	}
	// Chunks cut by an append are closed: they may take the decimal layout.
	emitCut := func(c *chunkBuilder, ref uint64) {
		buf = encodeClosedChunkValue(buf[:0], c, &db.decimal)
		_ = b.Set(chunkKey(nil, c.part, ref, c.mint), buf, nil)
		c.dirty = false
	}
	for i := range a.samples {
		ps := &a.samples[i]
		ps.s.clearPending(a)
		if ps.s.removed {
			s, err := db.getOrCreate(ps.s.lset)
			if err != nil {
				return b, nil, false, err
			}
			ps.s = s
		}
		s := ps.s
		if err := db.loadHeadLocked(s); err != nil {
			return b, nil, false, fmt.Errorf("load series head: %w", err)
		}
		if ps.smp.t <= s.maxT {
			// Another commit got there first, or the sample was out of order from the start.
			switch err := db.checkSample(ps.smp, s.maxT, s.last, false); {
			case err == nil:
				ooo = append(ooo, *ps)
			case !errors.Is(err, errIgnoredDuplicate):
				a.refusedAtCommit++
				if a.firstRefused == nil {
					a.firstRefused = fmt.Errorf("series %s at %d: %w", s.lset, ps.smp.t, err)
				}
			}
			continue
		}
		part := db.partition(ps.smp.t)
		if !s.persisted {
			rec.addSeries(s.ref, s.lset)
			db.ensurePersisted(b, s)
		}
		if err := db.ensureIndexed(b, s, part); err != nil {
			return b, nil, false, err
		}
		if err := s.head.append(ps.smp, part, func(c *chunkBuilder) { emitCut(c, s.ref) }); err != nil {
			db.stats.RejectedInvalid.Add(1)
			db.logger.Debug("Dropped a sample the chunk encoder refused", zap.Uint64("series_ref", s.ref), zap.Error(err))
			continue
		}
		s.mu.Lock()
		s.maxT, s.last = ps.smp.t, ps.smp
		s.mu.Unlock()
		if ps.smp.h == nil && ps.smp.fh == nil {
			rec.samples = appendLogSample(rec.samples, s.ref, ps.smp)
		} else {
			needSync = true
		}
		if !s.inDirty {
			s.inDirty = true
			dirty = append(dirty, s)
		}
		maxT = max(maxT, ps.smp.t)
		added++
	}
	// Float heads are left to the log and the next checkpoint; histogram heads are written now.
	for _, s := range dirty {
		s.inDirty = false
		if !s.head.dirty {
			continue
		}
		if isFloatChunk(s.head.chunk) {
			db.unsynced[s] = struct{}{}
		} else {
			emit(&s.head, s.ref)
		}
	}
	for family, m := range a.meta {
		_ = b.Set(metadataKey(nil, family), encodeMetadata(m), nil)
		needSync = true
	}
	if len(a.exemplars) > 0 {
		needSync = true
		if err := db.writeExemplars(b, a.exemplars); err != nil {
			return b, nil, false, err
		}
	}
	db.maxT.Store(maxT)
	db.stats.SamplesAppended.Add(added)
	return b, ooo, needSync, nil
}

// ensurePersisted adds the series keys of a series new to disk to the batch.
func (db *DB) ensurePersisted(b *pebble.Batch, s *memSeries) {
	if s.persisted {
		return
	}
	_ = b.Set(labelsByRefKey(nil, s.ref), encodeLabels(nil, s.lset), nil)
	hash := s.lset.Hash()
	_ = b.Set(seriesHashKey(nil, hash, s.ref), nil, nil)
	// Marked before the batch is applied: a lookup in between only costs a needless Get.
	db.series.markStored(hash)
	s.persisted = true
}

// maxIndexedKept bounds memSeries.indexed; older partitions are checked on disk if needed.
const maxIndexedKept = 4

// ensureIndexed writes the index entries of s for a partition once per partition.
func (db *DB) ensureIndexed(b *pebble.Batch, s *memSeries, part int64) error {
	for _, p := range s.indexed {
		if p == part {
			return nil
		}
	}
	key := partSeriesKey(nil, part, s.ref)
	var err error
	if s.fresh {
		// Created by this process: every index entry it has was written by it, and rewriting
		// one that fell out of s.indexed is harmless.
		err = pebble.ErrNotFound
	} else {
		var closer io.Closer
		_, closer, err = db.pdb.Get(key)
		if err == nil {
			_ = closer.Close()
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, pebble.ErrNotFound):
		_ = b.Set(key, nil, nil)
		s.lset.Range(func(l labels.Label) {
			_ = b.Set(putRef(postingsValuePrefix(nil, part, l.Name, l.Value), s.ref), nil, nil)
		})
		db.addPartition(part)
	default:
		return err
	}
	s.indexed = append(s.indexed, part)
	if len(s.indexed) > maxIndexedKept {
		s.indexed = s.indexed[1:]
	}
	return nil
}

// Rollback discards everything buffered.
func (a *Appender) Rollback() error {
	for _, ps := range a.samples {
		ps.s.clearPending(a)
	}
	a.reset()
	return nil
}

func (a *Appender) reset() {
	a.db.putSampleBuf(a.samples)
	a.samples, a.meta, a.exemplars = nil, nil, nil
}

// getSampleBuf and putSampleBuf recycle appenders' sample buffers, which grow to a batch's size.
func (db *DB) getSampleBuf() []pendingSample {
	if b, ok := db.sampleBufs.Get().(*[]pendingSample); ok {
		return (*b)[:0]
	}
	return make([]pendingSample, 0, 256)
}

func (db *DB) putSampleBuf(b []pendingSample) {
	if b == nil || cap(b) > 1<<16 {
		return
	}
	clear(b) // drop the references to series and histograms
	b = b[:0]
	db.sampleBufs.Put(&b)
}
