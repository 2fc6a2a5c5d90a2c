package tsdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/zap"
)

// memSeries is the in-memory state of one series: its identity and its head chunk.
// Everything here can be rebuilt from Pebble, so head garbage collection may drop a memSeries
// at any time between commits.
type memSeries struct {
	ref  uint64        // never changes
	lset labels.Labels // never changes

	// mu guards the fields that appenders read before they commit: loaded, last, pendingBy
	// and pendingAt. The fields are ordered so that the struct has no padding to speak of: at
	// 100k series every 8 bytes here is 0.8 MB of heap (216 bytes in the size class of 224, the
	// head's stream chunk included; 320 and an object per head before, BenchmarkHeadMemory).
	mu sync.Mutex
	// loaded: head and last reflect what is stored. Changed only by holders of both
	// DB.writeMu and mu, so holders of either may read it (loadHeadLocked reads it under
	// writeMu alone: a lock per sample of a commit was a cache miss per sample).
	loaded bool

	// The flags below are guarded by DB.writeMu.
	persisted bool // the s and l keys are stored (or in the batch being committed)
	fresh     bool // created by this process: nothing of it was on disk before
	inDirty   bool // listed in the current commit's dirty list
	// unsynced: the head holds samples only the sample log has, and the series is listed in
	// DB.unsynced for the next checkpoint to write. A flag and a list, not a set: a map insert
	// per series and commit was 4 % of the steady CPU at 100k series. Also guarded by headMu.
	unsynced bool
	removed  bool  // dropped from the registry by head GC; appenders must look up again
	nIndexed uint8 // how many of indexed hold partitions

	// last is the newest committed sample; its t is math.MinInt64 when there is none (maxT).
	last sample
	// pendingBy is an appender that holds an uncommitted sample of this series, at
	// pendingBy.samples[pendingAt], the newest of those; see Appender.admit. Only pendingBy
	// itself reads that index.
	pendingBy *Appender
	pendingAt int32
	// cmt is 1 + the index in DB.scratch.cmt of this series' newest sample in the commit being
	// prepared, 0 when the commit does not touch it (see prepareCommit). Guarded by writeMu.
	cmt int32

	head chunkBuilder // guarded by writeMu; by headMu too where queries read it
	// indexed[:nIndexed] are partitions known to hold this series' index entries, newest last;
	// older ones are checked on disk when needed (ensureIndexed). In the struct, not a slice of
	// its own: that was an allocation per series, a fifth of the heap's objects at 100k series.
	// Guarded by writeMu.
	indexed [maxIndexedKept]int64
}

// maxT is the time of the newest committed sample, math.MinInt64 when there is none. Callers
// hold mu or writeMu, as for last.
func (s *memSeries) maxT() int64 { return s.last.t }

// noSample is last before the first sample: maxT math.MinInt64.
var noSample = sample{t: math.MinInt64}

// indexedParts is indexed[:nIndexed].
func (s *memSeries) indexedParts() []int64 { return s.indexed[:s.nIndexed] }

// addIndexed records part as indexed, forgetting the oldest when all places are taken.
func (s *memSeries) addIndexed(part int64) {
	if int(s.nIndexed) == len(s.indexed) {
		copy(s.indexed[:], s.indexed[1:])
		s.nIndexed--
	}
	s.indexed[s.nIndexed] = part
	s.nIndexed++
}

// keepIndexed keeps the indexed partitions for which keep is true, in order.
func (s *memSeries) keepIndexed(keep func(part int64) bool) {
	n := 0
	for _, p := range s.indexedParts() {
		if keep(p) {
			s.indexed[n] = p
			n++
		}
	}
	s.nIndexed = uint8(n)
}

const seriesStripes = 64

// clearPending forgets a's uncommitted sample, so that the appender can be collected.
func (s *memSeries) clearPending(a *Appender) {
	s.mu.Lock()
	if s.pendingBy == a {
		s.pendingBy, s.pendingAt = nil, 0
	}
	s.mu.Unlock()
}

// seriesRegistry maps label sets and refs to memSeries. Lock order: a hash stripe before a ref
// stripe; DB.writeMu before either.
type seriesRegistry struct {
	byHash [seriesStripes]hashStripe
	byRef  refIndex
}

// hashStripe holds the series in memory whose label hashes fall in it, by hash.
type hashStripe struct {
	sync.RWMutex
	// m holds a series per label hash, and collisions the others of a hash whose first is in
	// m (label sets with the same hash: rare). Not a slice per hash: at 100k series the slices
	// and the larger map slots were 4 MB.
	m          map[uint64]*memSeries
	collisions map[uint64][]*memSeries
	// stored holds the label hashes of every series stored on disk (the h family), so
	// that a label set never seen before is known to be new without a Pebble lookup.
	stored hashSet
}

func (r *seriesRegistry) init() {
	for i := range r.byHash {
		r.byHash[i].m = map[uint64]*memSeries{}
	}
}

// find returns the series of lset, whose hash is h, or nil. Caller holds the stripe's lock.
func (st *hashStripe) find(h uint64, lset labels.Labels) *memSeries {
	s := st.m[h]
	if s == nil {
		return nil
	}
	if labels.Equal(s.lset, lset) {
		return s
	}
	for _, c := range st.collisions[h] {
		if labels.Equal(c.lset, lset) {
			return c
		}
	}
	return nil
}

// add registers s, whose labels hash to h and are not registered. Caller holds the lock.
func (st *hashStripe) add(h uint64, s *memSeries) {
	if _, taken := st.m[h]; !taken {
		st.m[h] = s
		return
	}
	if st.collisions == nil {
		st.collisions = map[uint64][]*memSeries{}
	}
	st.collisions[h] = append(st.collisions[h], s)
}

// remove unregisters s, whose labels hash to h. Caller holds the lock.
func (st *hashStripe) remove(h uint64, s *memSeries) {
	others := st.collisions[h]
	if st.m[h] == s {
		if len(others) == 0 {
			delete(st.m, h)
			return
		}
		st.m[h] = others[0]
		others = slices.Delete(others, 0, 1)
	} else if i := slices.Index(others, s); i >= 0 {
		others = slices.Delete(others, i, i+1)
	}
	if len(others) == 0 {
		delete(st.collisions, h)
	} else {
		st.collisions[h] = others
	}
}

func (r *seriesRegistry) count() int { return r.byRef.count() }

func (r *seriesRegistry) getByRef(ref uint64) *memSeries { return r.byRef.get(ref) }

// getOrCreate returns the memSeries of lset, looking it up on disk, or giving it a new ref,
// when it is not in memory. It applies no limit: it serves replay and series that must be
// found again for samples already admitted.
func (db *DB) getOrCreate(lset labels.Labels) (*memSeries, error) {
	return db.getOrCreateLimited(lset, false)
}

// getOrCreateLimited is getOrCreate that, when limited, refuses a series new to memory that
// exceeds Options.Limits (limits.go) with an error wrapping ErrLimitExceeded.
func (db *DB) getOrCreateLimited(lset labels.Labels, limited bool) (*memSeries, error) {
	h := lset.Hash()
	st := &db.series.byHash[h%seriesStripes]
	st.RLock()
	s := st.find(h, lset)
	st.RUnlock()
	if s != nil {
		return s, nil
	}
	maxActive := 0
	if limited {
		if err := db.checkSeriesLimits(lset); err != nil {
			return nil, err
		}
		// Checked before a ref is handed out, so that a flood of refused series burns no refs;
		// byRef.addBelow makes it exact under concurrency.
		if maxActive = db.opts.Limits.ActiveSeries; maxActive > 0 && db.series.count() >= maxActive {
			return nil, db.errActiveSeries(lset)
		}
	}

	st.Lock()
	defer st.Unlock()
	if s := st.find(h, lset); s != nil {
		return s, nil
	}
	// Kept, not copied, as Prometheus's head keeps it: Append's contract is that the caller does
	// not reuse the memory of ls (no ScratchBuilder.Overwrite buffers), and the label bytes are
	// held once (a copy was 11 MB at 100k series). The exporter appends a known series by its ref
	// alone, without labels (Appender.series).
	s = &memSeries{lset: lset, last: noSample}
	ref, found := uint64(0), false
	if st.stored.has(h) {
		var err error
		if ref, found, err = db.lookupStored(lset, h); err != nil {
			return nil, err
		}
	}
	if found {
		s.ref = ref
		s.persisted = true
	} else {
		s.ref = db.nextRef.Add(1)
		s.loaded = true // nothing stored yet
		s.fresh = true
	}
	if !db.series.byRef.addBelow(s, maxActive) {
		return nil, db.errActiveSeries(lset)
	}
	if !found {
		db.stats.SeriesCreated.Add(1)
	}
	st.add(h, s)
	return s, nil
}

// add registers s, whose labels hash to h. The caller knows s is not registered yet.
func (r *seriesRegistry) add(s *memSeries, h uint64) {
	st := &r.byHash[h%seriesStripes]
	st.Lock()
	st.add(h, s)
	st.Unlock()
	r.addRef(s)
}

func (r *seriesRegistry) addRef(s *memSeries) { r.byRef.add(s) }

// lookupStored finds the ref of a stored series by its labels: the h keys of its hash name the
// candidates (one, unless hashes collide), whose l keys hold their labels.
func (db *DB) lookupStored(lset labels.Labels, hash uint64) (uint64, bool, error) {
	prefix := putRef([]byte{famSeriesHashes}, hash)
	it, done, err := db.readIter(prefix, prefixEnd(prefix))
	if err != nil {
		return 0, false, err
	}
	var refs []uint64 // one, unless hashes collide
	for valid := it.First(); valid; valid = it.Next() {
		if len(it.Key()) != len(prefix)+8 {
			done()
			return 0, false, errCorruptKey
		}
		refs = append(refs, binaryRef(it.Key()[len(prefix):]))
	}
	err = it.Error()
	done()
	if err != nil {
		return 0, false, err
	}
	for _, ref := range refs {
		stored, found, err := db.storedLabels(ref)
		if err == nil && !found {
			err = pebble.ErrNotFound
		}
		if err != nil {
			return 0, false, fmt.Errorf("labels of series %d: %w", ref, err)
		}
		if labels.Equal(stored, lset) {
			return ref, true, nil
		}
	}
	return 0, false, nil
}

// storedLabels reads the labels of series ref from its l key.
func (db *DB) storedLabels(ref uint64) (labels.Labels, bool, error) {
	key := labelsByRefKey(nil, ref)
	if db.replayIt == nil {
		v, closer, err := db.pdb.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			return labels.EmptyLabels(), false, nil
		}
		if err != nil {
			return labels.EmptyLabels(), false, err
		}
		defer closer.Close()
		lset, err := decodeLabels(v) // copies the strings
		return lset, err == nil, err
	}
	it, done, err := db.readIter(key, append(slices.Clip(key), 0))
	if err != nil {
		return labels.EmptyLabels(), false, err
	}
	defer done()
	if !it.First() {
		return labels.EmptyLabels(), false, it.Error()
	}
	lset, err := decodeLabels(it.Value()) // copies the strings
	return lset, err == nil, err
}

// readIter returns an iterator over [lower, upper) and the function that ends its use. During a
// replay that is the replay's one iterator, rebounded: opening an iterator per series (its head,
// its labels, its hash) was most of the time of a restart after a crash at 100k series. The
// replay's view of Pebble is the one from before it, which is all it reads (its own writes are in
// its batch, applied at the end).
func (db *DB) readIter(lower, upper []byte) (*pebble.Iterator, func(), error) {
	if db.replayIt != nil {
		db.replayIt.SetBounds(lower, upper)
		return db.replayIt, func() {}, nil
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, nil, err
	}
	return it, func() { _ = it.Close() }, nil
}

// markStored records that a series with this label hash is on disk.
func (r *seriesRegistry) markStored(hash uint64) {
	st := &r.byHash[hash%seriesStripes]
	st.Lock()
	st.stored.add(hash)
	st.Unlock()
}

// removeSeries drops s from the registry. Caller holds writeMu.
func (db *DB) removeSeries(s *memSeries) {
	h := s.lset.Hash()
	st := &db.series.byHash[h%seriesStripes]
	st.Lock()
	st.remove(h, s)
	db.series.byRef.remove(s)
	st.Unlock()
	s.removed = true
}

// ensureLoaded makes s.head and s.last reflect what is stored. It waits for writeMu
// only until ctx ends.
func (db *DB) ensureLoaded(ctx context.Context, s *memSeries) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded {
		return nil
	}
	if err := db.writeMu.LockContext(ctx); err != nil {
		return err
	}
	defer db.writeMu.Unlock()
	return db.loadHeadLocked(s)
}

// loadHeadLocked reopens the newest stored chunk of s as its head. Caller holds writeMu, which
// is what changes loaded to false; the head is read from Pebble first and set under headMu.
func (db *DB) loadHeadLocked(s *memSeries) error {
	if s.loaded { // writeMu is enough to read it, see memSeries.loaded
		return nil
	}
	head, last := chunkBuilder{}, noSample
	if s.persisted {
		db.partsMu.RLock()
		parts := slices.Clone(db.parts)
		db.partsMu.RUnlock()
		for i := len(parts) - 1; i >= 0; i-- {
			c, found, err := db.lastChunk(parts[i], s.ref)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			b, l, err := builderFromStored(parts[i], c)
			if err != nil {
				return err
			}
			// The newest time is the chunk's maxt, its last sample's.
			head, last = b, l
			last.t = c.maxt
			break
		}
	}
	db.headMu.Lock()
	s.mu.Lock()
	s.head, s.last = head, last
	s.loaded = true
	s.mu.Unlock()
	db.headMu.Unlock()
	return nil
}

// lastChunk returns the newest chunk of a series in a partition, with its data copied.
func (db *DB) lastChunk(part int64, ref uint64) (storedChunk, bool, error) {
	lower := chunkSeriesPrefix(nil, part, ref)
	it, done, err := db.readIter(lower, prefixEnd(lower))
	if err != nil {
		return storedChunk{}, false, err
	}
	defer done()
	if !it.Last() {
		return storedChunk{}, false, it.Error()
	}
	_, _, mint, err := parseChunkKey(it.Key())
	if err != nil {
		return storedChunk{}, false, err
	}
	c, err := decodeChunkValue(mint, it.Value(), true)
	return c, err == nil, err
}

// collectHead drops from memory the series that have not been appended to for a while, so
// that churned series cost no memory. They are looked up again from disk if they come back.
func (db *DB) collectHead() {
	if db.acquire() != nil {
		return
	}
	defer db.release()
	maxT := db.maxT.Load()
	if maxT == math.MinInt64 {
		return
	}
	grace := db.opts.OutOfOrderWindow.Milliseconds() + time.Hour.Milliseconds()
	cutoff := maxT - grace

	var stale []*memSeries
	db.series.byRef.each(func(s *memSeries) {
		s.mu.Lock()
		if s.loaded && s.maxT() < cutoff {
			stale = append(stale, s)
		}
		s.mu.Unlock()
	})
	if len(stale) == 0 {
		return
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	for _, s := range stale {
		if s.unsynced {
			// Its head holds samples only the log has: write the heads out first.
			if err := db.checkpointLocked(headsQuick); err != nil {
				db.logger.Warn("Checkpoint before head collection failed", zap.Error(err))
				return
			}
			break
		}
	}
	// A collected head's stored copy is final: packed, not the quick copy of a checkpoint. A
	// series appended to meanwhile is skipped here and below alike.
	if err := db.packQuickHeadsLocked(slices.Values(stale)); err != nil {
		db.logger.Warn("Packing the heads of collected series failed; their stored copies stay as they are", zap.Error(err))
	}
	n := 0
	for _, s := range stale {
		// Re-check under writeMu: a commit may have appended since.
		s.mu.Lock()
		old := s.maxT() < cutoff
		s.mu.Unlock()
		if s.unsynced {
			continue // appended to since the checkpoint above
		}
		if old && !s.removed {
			db.removeSeries(s)
			n++
		}
	}
	db.stats.HeadSeriesCollected.Add(int64(n))
}

func binaryRef(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// markUnsynced lists s for the next checkpoint: its head holds samples only the log has. Caller
// holds writeMu, and headMu unless queries cannot run yet (replay).
func (db *DB) markUnsynced(s *memSeries) {
	if !s.unsynced {
		s.unsynced = true
		db.unsynced = append(db.unsynced, s)
	}
}
