package tsdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
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
	ctx       context.Context // bounds how long Append and Commit wait for an earlier commit
	samples   []pendingSample
	meta      map[string]metadata.Metadata
	exemplars []pendingExemplar
	// lastFamily and lastMeta are the metadata addMetadata handled last: the samples of a metric
	// come one after the other with the same metadata, and each was a lock and a map lookup.
	lastFamily string
	lastMeta   metadata.Metadata

	// Samples valid on Append that a concurrent commit made invalid before this Commit (pushed
	// out of the out-of-order window, or a different value at the same timestamp).
	refusedAtCommit int
	firstRefused    error
}

type pendingSample struct {
	s       *memSeries
	smp     sample
	inOrder bool // decided by prepareCommit: appended to the head, not merged
}

type pendingExemplar struct {
	s *memSeries
	e exemplar.Exemplar
}

var _ storage.AppenderV2 = (*Appender)(nil)

// AppenderV2 returns a new appender.
// Commit gives up waiting for an earlier commit when ctx ends, with ErrUnavailable.
func (db *DB) AppenderV2(ctx context.Context) storage.AppenderV2 {
	if ctx == nil {
		ctx = context.Background()
	}
	return &Appender{db: db, ctx: ctx}
}

// NewAppender returns a new appender that waits for earlier commits as long as they take.
func (db *DB) NewAppender() *Appender { return &Appender{db: db, ctx: context.Background()} }

// Append implements storage.AppenderV2. It never fails for a metadata or exemplar problem:
// those are reported as *storage.AppendPartialError after the sample was buffered. A new
// series keeps ls: the caller must not reuse its memory (labels.ScratchBuilder.Overwrite).
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
// A ref with empty labels names the series in memory that the DB gave that ref: a ref is never
// given to two label sets while the DB is open (nextRef only grows).
func (a *Appender) series(ref storage.SeriesRef, ls labels.Labels) (*memSeries, error) {
	if ref != 0 {
		s := a.db.series.getByRef(uint64(ref))
		if s != nil && (ls.IsEmpty() || labels.Equal(s.lset, ls)) {
			return s, nil
		}
		if s == nil && ls.IsEmpty() {
			return nil, fmt.Errorf("series ref %d: %w", ref, ErrUnknownSeriesRef)
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
	// A loaded series is checked under its own lock alone: this is every sample of a known
	// series, and the DB-wide acquire/release (a shared lock and counter written by every
	// caller) cost more here than the check. Only loading a head reads Pebble.
	if a.db.isClosed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	for !s.loaded {
		s.mu.Unlock()
		if err := a.loadHead(s); err != nil {
			return err
		}
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	maxT, last := s.maxT(), s.last
	pending := a.pendingOf(s)
	if pending != nil && pending.t >= maxT {
		maxT, last = pending.t, *pending
	}
	if err := a.db.checkSample(smp, maxT, last, rejectOOO); err != nil {
		return err
	}
	// Remember the newest buffered sample so that the next one of this appender is checked
	// against it: Append puts smp at a.samples[len(a.samples)] as soon as admit accepts it.
	// Another appender may take the slot over; the loser's later samples are then checked at
	// commit instead.
	if pending == nil || smp.t > pending.t {
		s.pendingBy, s.pendingAt = a, int32(len(a.samples))
	}
	return nil
}

// pendingOf returns the newest sample of s that a holds uncommitted, as admit recorded it,
// or nil. The caller holds s.mu. The index is checked against a.samples, so that a slot
// left behind by a commit that failed half way is never misread.
func (a *Appender) pendingOf(s *memSeries) *sample {
	if s.pendingBy != a {
		return nil
	}
	if i := int(s.pendingAt); i < len(a.samples) && a.samples[i].s == s {
		return &a.samples[i].smp
	}
	return nil
}

// loadHead makes sure the head of s is loaded (see DB.ensureLoaded).
func (a *Appender) loadHead(s *memSeries) error {
	if err := a.db.acquire(); err != nil {
		return err
	}
	defer a.db.release()
	if err := a.db.ensureLoaded(a.ctx, s); err != nil {
		return fmt.Errorf("load series head: %w", err)
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
	if family == "" || (family == a.lastFamily && m == a.lastMeta) {
		return
	}
	a.lastFamily, a.lastMeta = family, m
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

// Commit writes everything buffered: the float samples as one record of the sample log, then
// one Pebble batch. It fails with an error wrapping ErrUnavailable, having stored and shown
// nothing of the commit, when the DB cannot write (writeguard.go), and gives up waiting for an
// earlier commit when the appender's context ends.
//
// The order makes a refusal leave no trace: everything that can fail (Pebble reads, the log
// write) happens before anything in memory changes, and what changes in memory after the log
// record is out can always be rebuilt from it.
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
	probe, err := db.guard.admit()
	if err != nil {
		a.unpend()
		return err
	}
	if err := db.writeMu.LockContext(a.ctx); err != nil {
		a.unpend()
		return err
	}
	if err := db.brokenErr(); err != nil {
		db.writeMu.Unlock()
		a.unpend()
		return err
	}
	b := db.pdb.NewBatch()
	ooo, needSync, err := db.prepareCommit(a, b)
	if err != nil {
		db.undoCommit()
		db.writeMu.Unlock()
		a.unpend()
		_ = b.Close()
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	// The log record first: the batch only holds what the log can rebuild, or waits for
	// Pebble's WAL sync (needSync), so a crash between the two loses nothing acknowledged.
	if !db.logRec.empty() {
		if db.log.bytes == 0 {
			db.logStart = time.Now()
		}
		rec := db.logRec.framed()
		if err := db.log.write(rec); err != nil {
			db.undoCommit()
			db.writeMu.Unlock()
			a.unpend()
			_ = b.Close()
			db.guard.set(causeLog, err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		db.guard.logWritten.Add(int64(len(rec)))
	}
	if probe {
		db.guard.set(causeLog, nil)
	}
	db.publishCommit(a, b)
	if needSync {
		err = db.pdb.ApplyNoSyncWait(b, pebble.Sync)
	} else if !b.Empty() {
		err = db.pdb.Apply(b, pebble.NoSync)
	}
	if err != nil {
		// Pebble's commit pipeline failed (in Pebble v2 it is fatal, so this is defensive): the
		// commit is in the log and in memory, cut chunks included (DB.cuts keeps them
		// visible), and the next Open replays it; nothing more is written until then.
		err = db.setBroken(fmt.Errorf("commit batch: %w", err))
		db.writeMu.Unlock()
		_ = b.Close()
		return err
	}
	db.clearCuts()
	db.publishMetadata(a.meta)
	if len(ooo) > 0 {
		err = db.writeOutOfOrder(ooo)
	}
	if err == nil && db.log.bytes >= db.checkpointAt && db.ckpt == nil {
		// The checkpointer writes the heads in parts, with commits going on between them.
		db.kickCheckpoint()
	}
	db.writeMu.Unlock()
	if needSync {
		// Wait for the fsync outside writeMu, so concurrent commits share one WAL sync.
		if serr := b.SyncWait(); serr != nil {
			err = errors.Join(err, db.setBroken(fmt.Errorf("sync batch: %w", serr)))
		}
	}
	err = errors.Join(err, b.Close())
	if err == nil && a.refusedAtCommit > 0 {
		// The rest is stored; say so rather than acknowledge the refused samples. A retry
		// rejects them one by one on Append.
		err = fmt.Errorf("%d samples refused at commit, the others stored; first: %w", a.refusedAtCommit, a.firstRefused)
	}
	return err
}

// unpend forgets the appender's pending samples when its commit is refused before anything of it
// is published.
func (a *Appender) unpend() {
	for _, ps := range a.samples {
		ps.s.clearPending(a)
	}
}

// commitScratch is the bookkeeping of the commit being prepared, guarded by writeMu: what
// prepareCommit changed that undoCommit must take back, and what publishCommit must finish.
type commitScratch struct {
	touched   []*memSeries  // series with memSeries.cmt set
	cmt       []cmtState    // indexed by memSeries.cmt-1: the newest sample each has in the commit
	persisted []*memSeries  // series whose keys this commit writes
	indexed   []indexedPart // index entries this commit writes
	dirty     []*memSeries  // publishCommit's heads that gained samples, kept for its next use
	touchSum  int64         // see touchIndexed
	postings  postingListWriter
}

// cmtState is the newest sample of a series once the commit being prepared is applied. Kept
// here rather than in memSeries: only the few series of one commit need it at a time.
type cmtState struct {
	maxT int64
	last sample
}

type indexedPart struct {
	s    *memSeries
	part int64
}

func (sc *commitScratch) reset() {
	clear(sc.touched)
	clear(sc.cmt)
	clear(sc.persisted)
	clear(sc.indexed)
	sc.touched, sc.cmt, sc.persisted, sc.indexed = sc.touched[:0], sc.cmt[:0], sc.persisted[:0], sc.indexed[:0]
	sc.postings.reset()
}

// prepareCommit decides which buffered samples are appended in order, builds the commit's log
// record (db.logRec) and the Pebble batch (series and index keys, metadata, exemplars), and
// returns the samples that must be merged out of order and whether the batch holds anything the
// sample log cannot rebuild (histograms, metadata, exemplars), so that it must be synced. It
// changes nothing that queries or later commits see, except what undoCommit takes back.
// Caller holds writeMu.
func (db *DB) prepareCommit(a *Appender, b *pebble.Batch) (ooo []pendingSample, needSync bool, err error) {
	sc := &db.scratch
	sc.reset()
	rec := &db.logRec
	rec.reset()
	db.touchIndexed(a.samples)
	for i := range a.samples {
		ps := &a.samples[i]
		ps.inOrder = false
		// The pending slot of ps.s is cleared by publishCommit, under the lock it takes anyway
		// (a lock per sample here was a cache miss per sample): until then only a reads it,
		// and a appends nothing while it commits.
		if ps.s.removed {
			ps.s.clearPending(a)
			s, err := db.getOrCreate(ps.s.lset)
			if err != nil {
				return nil, false, err
			}
			ps.s = s
		}
		s := ps.s
		if err := db.loadHeadLocked(s); err != nil {
			return nil, false, fmt.Errorf("load series head: %w", err)
		}
		if s.cmt == 0 {
			sc.cmt = append(sc.cmt, cmtState{maxT: s.maxT(), last: s.last})
			s.cmt = int32(len(sc.cmt))
			sc.touched = append(sc.touched, s)
		}
		cs := &sc.cmt[s.cmt-1]
		if ps.smp.t <= cs.maxT {
			// Another commit got there first, or the sample was out of order from the start.
			switch err := db.checkSample(ps.smp, cs.maxT, cs.last, false); {
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
		if !s.persisted {
			rec.addSeries(s.ref, s.lset)
			db.ensurePersisted(b, s)
			sc.persisted = append(sc.persisted, s)
		}
		if err := db.ensureIndexed(b, &sc.postings, s, db.partition(ps.smp.t)); err != nil {
			return nil, false, err
		}
		ps.inOrder = true
		cs.maxT, cs.last = ps.smp.t, ps.smp
		if ps.smp.h == nil && ps.smp.fh == nil {
			rec.samples = appendLogSample(rec.samples, s.ref, ps.smp)
		} else {
			needSync = true
		}
	}
	for family, m := range a.meta {
		_ = b.Set(metadataKey(nil, family), encodeMetadata(m), nil)
		needSync = true
	}
	if len(a.exemplars) > 0 {
		needSync = true
		if err := db.writeExemplars(b, &sc.postings, a.exemplars); err != nil {
			return nil, false, err
		}
	}
	sc.postings.writeTo(b)
	return ooo, needSync, nil
}

// touchIndexed and touchHeads read, for every sample of a commit, what prepareCommit and
// publishCommit will read of its series: the series itself, its list of indexed partitions, its
// open chunk and the chunk's last bytes. Each is a separate allocation, and at 100k series each
// is a cache miss; paid one sample after the other (the work per sample is too long for the CPU
// to start the next sample's loads early) they were a large part of a commit. In these short
// loops the loads of different samples do not depend on each other, so their misses overlap.
// The sums keep the loads from being optimised away. Callers hold writeMu (and headMu for
// touchHeads), which guard everything read here.
func (db *DB) touchIndexed(samples []pendingSample) {
	var sum int64
	for i := range samples {
		s := samples[i].s
		// s.ref and s.cmt: the struct's first hundred bytes (flags, last, cmt).
		sum += int64(s.ref) + int64(s.cmt)
		if n := s.nIndexed; n > 0 {
			sum += s.indexed[n-1]
		}
	}
	db.scratch.touchSum = sum
}

func (db *DB) touchHeads(samples []pendingSample) {
	var sum int
	for i := range samples {
		s := samples[i].s
		if c := &s.head; c.open() && samples[i].inOrder {
			// s.ref: the cache line of s.mu, which publishCommit takes.
			sum += int(s.ref)
			if b := c.stream.b; len(b) > 0 {
				sum += int(b[len(b)-1])
			}
		}
	}
	db.scratch.touchSum = int64(sum)
}

// undoCommit takes back what prepareCommit changed, for a commit that is refused. Caller holds
// writeMu.
func (db *DB) undoCommit() {
	sc := &db.scratch
	for _, s := range sc.touched {
		s.cmt = 0
	}
	for _, s := range sc.persisted {
		s.persisted = false
	}
	for _, ip := range sc.indexed {
		ip.s.keepIndexed(func(p int64) bool { return p != ip.part })
	}
	sc.reset()
	db.logRec.reset()
}

// publishCommit appends the commit's in-order samples to their heads, adding the chunks they
// cut to the batch. Nothing here can fail: the log record is written, and memory must show
// what it holds. Caller holds writeMu; headMu is taken here, so queries see a commit whole.
func (db *DB) publishCommit(a *Appender, b *pebble.Batch) {
	var (
		sc    = &db.scratch
		dirty = sc.dirty[:0] // grown from nil per commit, it was 6 % of the bytes steady writes allocate
		buf   []byte
		key   []byte
		maxT  = db.maxT.Load()
		added int64
	)
	// Chunks cut by an append are closed: they may take the decimal layout. Until the batch is
	// applied, the cut chunk is only in memory: DB.cuts keeps it visible to queries.
	emitCut := func(c *chunkBuilder, s *memSeries, next, nextPart int64) {
		db.noteCut(s.ref, c, next, nextPart)
		buf = db.encodeStored(buf[:0], c, &db.decimal)
		key = chunkKey(key[:0], c.part, s.ref, c.mint) // the batch copies it
		_ = b.Set(key, buf, nil)
		c.dirty = false
		if db.cuts == nil {
			db.cuts = map[uint64][]storedChunk{}
		}
		chk := c.chunk()
		db.cuts[s.ref] = append(db.cuts[s.ref], storedChunk{mint: c.mint, maxt: c.maxt, enc: chk.Encoding(), data: chk.Bytes()})
	}
	db.headMu.Lock()
	defer db.headMu.Unlock()
	for _, s := range sc.touched {
		s.cmt = 0
	}
	db.touchHeads(a.samples)
	// The heads first, then what appenders read under each series' lock, in a loop of its own:
	// a lock is a full barrier, and taken after each append it waited for that append's stores
	// (the chunk's bytes, missing the cache at 100k series) to complete: the lock was 5 % of the
	// steady CPU with four senders on two cores, about 1-3 % of it saved (BENCHMARKS.md).
	// Appenders never read the heads, so publishing s.last after all of them changes nothing
	// they can see: until the second loop reaches a series, its last is the one before the
	// commit, as it was while the first loop ran before.
	for i := range a.samples {
		ps := &a.samples[i]
		if !ps.inOrder {
			continue
		}
		s := ps.s
		part := db.partition(ps.smp.t)
		if err := s.head.append(ps.smp, part, func(c *chunkBuilder) { emitCut(c, s, ps.smp.t, part) }); err != nil {
			db.stats.RejectedInvalid.Add(1)
			db.logger.Debug("Dropped a sample the chunk encoder refused", zap.Uint64("series_ref", s.ref), zap.Error(err))
			ps.inOrder = false // not in the head: its series' last stays as it was
			continue
		}
		if !s.inDirty {
			s.inDirty = true
			dirty = append(dirty, s)
		}
		maxT = max(maxT, ps.smp.t)
		added++
	}
	for i := range a.samples {
		ps := &a.samples[i]
		s := ps.s
		s.mu.Lock()
		if ps.inOrder {
			s.last = ps.smp
		}
		if s.pendingBy == a { // see prepareCommit
			s.pendingBy, s.pendingAt = nil, 0
		}
		s.mu.Unlock()
	}
	// Float heads are left to the log and the next checkpoint; histogram heads are written now.
	for _, s := range dirty {
		s.inDirty = false
		if !s.head.dirty {
			continue
		}
		if isFloatChunk(s.head.chunk()) {
			db.markUnsynced(s)
		} else {
			buf = encodeChunkValue(buf[:0], &s.head)
			key = chunkKey(key[:0], s.head.part, s.ref, s.head.mint)
			_ = b.Set(key, buf, nil)
			s.head.dirty = false
		}
	}
	clear(dirty) // no pointers kept to series that head collection may drop
	sc.dirty = dirty[:0]
	for _, ip := range sc.indexed {
		db.addPartition(ip.part)
	}
	db.maxT.Store(maxT)
	db.stats.SamplesAppended.Add(added)
	db.kickMerge()
}

// clearCuts drops the cut chunks kept in memory once the batch that holds them is applied.
// Caller holds writeMu.
func (db *DB) clearCuts() {
	if len(db.cuts) == 0 {
		return
	}
	db.headMu.Lock()
	clear(db.cuts)
	db.headMu.Unlock()
}

// ensurePersisted adds the series keys of a series new to disk to the batch.
func (db *DB) ensurePersisted(b *pebble.Batch, s *memSeries) {
	if s.persisted {
		return
	}
	// Keys and values are built in buffers on the stack: the batch copies them.
	var kb, vb [256]byte
	_ = b.Set(labelsByRefKey(kb[:0], s.ref), encodeLabels(vb[:0], s.lset), nil)
	hash := s.lset.Hash()
	_ = b.Set(seriesHashKey(kb[:0], hash, s.ref), nil, nil)
	// Marked before the batch is applied: a lookup in between only costs a needless Get.
	db.series.markStored(hash)
	s.persisted = true
}

// maxIndexedKept bounds memSeries.indexed; older partitions are checked on disk if needed.
// Two: the partition samples arrive in and the one before it, where late samples go.
const maxIndexedKept = 2

// ensureIndexed writes the index entries of s for a partition once per partition: its `p` key
// into b, its labels into pl, which the caller writes into b before applying it.
func (db *DB) ensureIndexed(b *pebble.Batch, pl *postingListWriter, s *memSeries, part int64) error {
	for _, p := range s.indexedParts() {
		if p == part {
			return nil
		}
	}
	var kb [256]byte // keys are built here: the batch copies them
	key := partSeriesKey(kb[:0], part, s.ref)
	var err error
	if s.fresh {
		// Created by this process: every index entry it has was written by it, and rewriting
		// one that fell out of s.indexed is harmless.
		err = pebble.ErrNotFound
	} else {
		var closer io.Closer
		_, closer, err = db.pdb.Get(slices.Clone(key)) // a copy: Get's key escapes, kb need not
		if err == nil {
			_ = closer.Close()
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, pebble.ErrNotFound):
		_ = b.Set(key, nil, nil)
		pl.add(part, s.lset, s.ref)
		// Listed for the commit being prepared (publishCommit adds the partition, undoCommit
		// forgets it); replay and out-of-order merges add it at once.
		if s.cmt != 0 {
			db.scratch.indexed = append(db.scratch.indexed, indexedPart{s, part})
		} else {
			db.addPartition(part)
		}
	default:
		return err
	}
	s.addIndexed(part)
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
	a.lastFamily, a.lastMeta = "", metadata.Metadata{}
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
