package tsdb

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// selectBatch is how many matching series a streamed Select reads at a time. A batch is read
// walking forward through each partition's chunk keys, so its cost is a few iterator steps per
// series; what it holds in memory (chunk bytes copied out of Pebble) is bounded by the batch,
// not by the whole selection, once the caller drops the series it has iterated.
const selectBatch = 256

// slabSize is the size of the buffers that chunk bytes are copied into: one allocation for
// many chunks instead of one per chunk. A series keeps its slab alive while it is referenced.
const slabSize = 64 << 10

// streamSet is the SeriesSet of Select: it holds the postings (refs only), a Pebble snapshot and
// the copies of the open head chunks taken together with it, and reads chunks and labels
// batch by batch as Next is called.
//
// Invariants: snap and heads were taken under headMu together, so a sample committed before
// Select is either in a head copy or in a chunk of snap, and a chunk cut between the two cannot
// exist. Within a batch refs are visited in ascending order, so each partition's iterator only
// ever moves forward unless the output order (sorted by labels) makes a batch start below the
// previous one, which is detected (see partIter.last) and answered with a seek.
type streamSet struct {
	db         *DB
	ctx        context.Context
	snap       *pebble.Snapshot
	mint, maxt int64
	trim       bool
	withData   bool
	grid       stepGrid // handed to the series (see StepGrid)

	order []uint64                 // refs in output order: ascending, or sorted by labels
	lsets []labels.Labels          // labels parallel to order when sorted, else nil
	heads map[uint64][]storedChunk // chunks in memory: cut and not yet applied, then the open head
	parts []partIter
	lblIt *pebble.Iterator // over the l family of snap, created on first need

	pos   int           // index in order of the next ref to read
	batch []chunkSeries // series of the current batch that have data in range, in output order
	bi    int           // index in batch of the next series to return
	cur   *chunkSeries
	err   error

	slab     []byte // current buffer for copied chunk bytes
	chunkCap int    // chunks in the previous batch: the next batch's first guess
	key      []byte // scratch key

	closeMu sync.Mutex
	closed  bool
}

// partIter is the chunk iterator of one partition.
type partIter struct {
	part    int64
	it      *pebble.Iterator // nil until the first series is read
	last    uint64           // ref the iterator was last positioned for
	started bool             // last is set
}

var _ storage.SeriesSet = (*streamSet)(nil)

// newStreamSet takes a fresh snapshot and copies the open head chunks of refs that hold samples
// the snapshot lacks, both under headMu so that they agree. refs must ascend.
func (q *Querier) newStreamSet(ctx context.Context, refs []uint64, mint, maxt int64, trim, withData bool) *streamSet {
	db := q.db
	s := &streamSet{db: db, ctx: ctx, mint: mint, maxt: maxt, trim: trim, withData: withData, order: refs}
	for _, part := range db.partitionsBetween(mint, maxt) {
		s.parts = append(s.parts, partIter{part: part})
	}
	var headBytes []byte
	copyChunk := func(c storedChunk) storedChunk {
		if !withData {
			c.data = nil
			return c
		}
		if cap(headBytes)-len(headBytes) < len(c.data) {
			headBytes = make([]byte, 0, max(slabSize, len(c.data)))
		}
		off := len(headBytes)
		headBytes = append(headBytes, c.data...)
		c.data = headBytes[off:len(headBytes):len(headBytes)]
		return c
	}
	// headMu, not writeMu: a commit holds headMu only while it changes memory, never while it
	// writes, so a query does not wait for a write stuck on the disk.
	db.headMu.RLock()
	s.snap = db.pdb.NewSnapshot()
	// Heads that are not dirty are stored as they are under their c key, in snap; dirty ones
	// are listed in db.unsynced or in the checkpoint that runs. Cut chunks wait in memory
	// while their commit's batch is applied.
	if len(db.unsynced) > 0 || db.ckpt != nil || len(db.cuts) > 0 {
		for _, ref := range refs {
			ms := db.series.getByRef(ref)
			if ms == nil {
				continue
			}
			var mem []storedChunk
			for _, c := range db.cuts[ref] {
				mem = append(mem, copyChunk(c))
			}
			if chk := ms.head.chunk(); chk != nil && ms.head.dirty {
				mem = append(mem, copyChunk(storedChunk{mint: ms.head.mint, maxt: ms.head.maxt,
					enc: chk.Encoding(), data: chk.Bytes()}))
			}
			if len(mem) == 0 {
				continue
			}
			if s.heads == nil {
				s.heads = map[uint64][]storedChunk{}
			}
			s.heads[ref] = mem
		}
	}
	db.headMu.RUnlock()
	q.track(s)
	return s
}

// sortByLabels reads the labels of every ref and orders the output by them. Sorting needs every
// label set before the first series, but not the chunks, which are still read batch by batch.
func (s *streamSet) sortByLabels() error {
	lsets := make([]labels.Labels, len(s.order))
	for i, ref := range s.order {
		if i%1024 == 0 && s.ctx.Err() != nil {
			return s.ctx.Err()
		}
		ls, err := s.labelsOf(ref)
		if err != nil {
			return err
		}
		lsets[i] = ls
	}
	idx := make([]int, len(s.order))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return labels.Compare(lsets[a], lsets[b]) })
	order := make([]uint64, len(idx))
	s.lsets = make([]labels.Labels, len(idx))
	for i, j := range idx {
		order[i], s.lsets[i] = s.order[j], lsets[j]
	}
	s.order = order
	return nil
}

func (s *streamSet) Next() bool {
	for {
		if s.bi < len(s.batch) {
			s.cur = &s.batch[s.bi]
			s.bi++
			return true
		}
		s.cur = nil
		if s.err != nil || s.pos >= len(s.order) {
			// Exhausted or failed: release the snapshot now rather than at the querier's
			// Close. The series handed out own copies of their chunks.
			s.close()
			return false
		}
		if err := s.ctx.Err(); err != nil {
			s.err = err
			continue
		}
		if err := s.readBatch(); err != nil {
			s.err = err
			s.batch, s.bi = nil, 0
		}
	}
}

func (s *streamSet) At() storage.Series              { return s.cur }
func (s *streamSet) Err() error                      { return s.err }
func (*streamSet) Warnings() annotations.Annotations { return nil }

// readBatch reads the next selectBatch refs of order and keeps, in output order, those with
// data in [mint, maxt]. The batch's series share freshly allocated slices, never reused: the
// caller may keep series of earlier batches.
func (s *streamSet) readBatch() error {
	n := min(selectBatch, len(s.order)-s.pos)
	refs := s.order[s.pos : s.pos+n]
	var lsets []labels.Labels
	if s.lsets != nil {
		lsets = s.lsets[s.pos : s.pos+n]
	}
	s.pos += n

	// Visit refs in ascending order; when the output is ascending already, that is refs itself.
	visit := make([]int, n)
	for i := range visit {
		visit[i] = i
	}
	if lsets != nil {
		slices.SortFunc(visit, func(a, b int) int { return cmp.Compare(refs[a], refs[b]) })
	}
	series := make([]chunkSeries, n)
	chunks := make([]storedChunk, 0, max(s.chunkCap, n))
	for _, i := range visit {
		start := len(chunks)
		var err error
		if chunks, err = s.seriesChunks(refs[i], chunks); err != nil {
			return err
		}
		if len(chunks) == start {
			continue // no data in range: not returned
		}
		cs := &series[i]
		cs.chunks = chunks[start:len(chunks):len(chunks)]
		cs.mint, cs.maxt, cs.trim, cs.grid = s.mint, s.maxt, s.trim, s.grid
		if lsets != nil {
			cs.lset = lsets[i]
		} else if cs.lset, err = s.labelsOf(refs[i]); err != nil {
			return err
		}
	}
	s.chunkCap = len(chunks)
	kept := series[:0]
	for i := range series {
		if series[i].chunks != nil {
			kept = append(kept, series[i])
		}
	}
	s.batch, s.bi = kept, 0
	return nil
}

// seriesChunks appends to dst the chunks of ref that overlap [mint, maxt], in time order, open
// head chunk included; chunk bytes are copied (when withData) into the set's slabs.
func (s *streamSet) seriesChunks(ref uint64, dst []storedChunk) ([]storedChunk, error) {
	start := len(dst)
	for pi := range s.parts {
		p := &s.parts[pi]
		if p.it == nil {
			prefix := chunkPartPrefix(nil, p.part)
			it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
			if err != nil {
				return dst, err
			}
			p.it = it
		}
		it := p.it
		s.key = chunkSeriesPrefix(s.key[:0], p.part, ref)
		var valid bool
		switch {
		case p.started && ref > p.last && !it.Valid() && it.Error() == nil:
			// The iterator ran off the partition's end after an earlier series: nothing
			// of a larger ref is left.
		case p.started && ref > p.last && bytes.Compare(it.Key(), s.key) >= 0:
			// The iterator stopped at the first key after the previous (smaller) series'
			// keys, which is where a seek would land; a seek costs index block reads.
			valid = true
		default:
			valid = it.SeekGE(s.key)
		}
		p.last, p.started = ref, true
		for ; valid; valid = it.Next() {
			_, r, cmint, err := parseChunkKey(it.Key())
			if err != nil {
				return dst, err
			}
			if r != ref || cmint > s.maxt {
				break
			}
			c, err := decodeChunkValue(cmint, it.Value(), false)
			if err != nil {
				return dst, err
			}
			if c.maxt < s.mint {
				continue
			}
			if s.withData {
				c.data = s.copyBytes(c.data)
			} else {
				c.data = nil
			}
			dst = append(dst, c)
		}
		if err := it.Error(); err != nil {
			return dst, err
		}
	}
	for _, h := range s.heads[ref] {
		// The stored chunk with the mint of a chunk in memory, if any, is an older prefix of
		// it (or, for a cut chunk whose batch was applied meanwhile, the same chunk). Chunks in
		// memory are the newest of the series, in time order.
		for j := start; j < len(dst); j++ {
			if dst[j].mint == h.mint {
				dst = slices.Delete(dst, j, j+1)
				break
			}
		}
		if h.maxt >= s.mint && h.mint <= s.maxt {
			dst = append(dst, h)
		}
	}
	return dst, nil
}

// copyBytes copies b into the current slab, starting a new one when it is full. The result's
// capacity ends with it, so nothing appended to it can overwrite a neighbour.
func (s *streamSet) copyBytes(b []byte) []byte {
	if cap(s.slab)-len(s.slab) < len(b) {
		s.slab = make([]byte, 0, max(slabSize, len(b)))
	}
	off := len(s.slab)
	s.slab = append(s.slab, b...)
	return s.slab[off:len(s.slab):len(s.slab)]
}

// labelsOf returns the labels of a series: from memory for series in the head, otherwise from
// its l key in snap, which is never deleted. Refs mostly ascend, so the iterator steps forward a
// few keys before paying for a seek.
func (s *streamSet) labelsOf(ref uint64) (labels.Labels, error) {
	if ms := s.db.series.getByRef(ref); ms != nil {
		return ms.lset, nil
	}
	if s.lblIt == nil {
		it, err := s.snap.NewIter(&pebble.IterOptions{
			LowerBound: []byte{famLabelsByRef}, UpperBound: []byte{famLabelsByRef + 1}})
		if err != nil {
			return labels.EmptyLabels(), err
		}
		s.lblIt = it
	}
	it := s.lblIt
	s.key = labelsByRefKey(s.key[:0], ref)
	valid := it.Valid() && bytes.Compare(it.Key(), s.key) <= 0
	for n := 0; valid && n < 8 && bytes.Compare(it.Key(), s.key) < 0; n++ {
		valid = it.Next()
	}
	if !valid || !bytes.Equal(it.Key(), s.key) {
		valid = it.SeekGE(s.key)
	}
	if !valid || !bytes.Equal(it.Key(), s.key) {
		if err := it.Error(); err != nil {
			return labels.EmptyLabels(), err
		}
		return labels.EmptyLabels(), fmt.Errorf("labels of series %d: %w", ref, pebble.ErrNotFound)
	}
	return decodeLabels(it.Value())
}

// close releases the iterators and the snapshot; it is idempotent, called when the set is
// exhausted or fails, and by the querier's Close for sets left unfinished. The series already
// returned stay readable: they own their chunk bytes.
func (s *streamSet) close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for i := range s.parts {
		if it := s.parts[i].it; it != nil {
			errs = append(errs, it.Close())
		}
	}
	if s.lblIt != nil {
		errs = append(errs, s.lblIt.Close())
	}
	errs = append(errs, s.snap.Close())
	// Drop what only the reading needed; a caller may keep the set until the querier closes.
	s.parts, s.lblIt, s.heads, s.order, s.lsets, s.slab = nil, nil, nil, nil, nil, nil
	s.pos = 0
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
