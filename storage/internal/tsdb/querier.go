package tsdb

import (
	"context"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
)

// Querier reads a consistent snapshot of the DB over [mint, maxt]. It holds the DB open
// until Close.
type Querier struct {
	db         *DB
	snap       *pebble.Snapshot
	mint, maxt int64
	closeOnce  sync.Once

	mu   sync.Mutex   // guards sets
	sets []*streamSet // sets of Select, closed with the querier
}

var _ storage.Querier = (*Querier)(nil)

// Querier implements storage.Queryable; bounds are inclusive milliseconds.
func (db *DB) Querier(mint, maxt int64) (storage.Querier, error) {
	return db.newQuerier(mint, maxt)
}

func (db *DB) newQuerier(mint, maxt int64) (*Querier, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	return &Querier{db: db, snap: db.pdb.NewSnapshot(), mint: mint, maxt: maxt}, nil
}

// Close releases the snapshot and those of the sets of Select that were not read to their end.
func (q *Querier) Close() error {
	var err error
	q.closeOnce.Do(func() {
		q.mu.Lock()
		sets := q.sets
		q.sets = nil
		q.mu.Unlock()
		for _, s := range sets {
			if e := s.close(); e != nil && err == nil {
				err = e
			}
		}
		if e := q.snap.Close(); e != nil && err == nil {
			err = e
		}
		q.db.release()
	})
	return err
}

// postings returns the refs of the series matching ms in any partition of [mint, maxt].
func (q *Querier) postings(mint, maxt int64, ms []*labels.Matcher) ([]uint64, error) {
	var refs []uint64
	for _, part := range q.db.partitionsBetween(mint, maxt) {
		p, err := q.db.index(q.snap).postingsForMatchers(part, ms)
		if err != nil {
			return nil, err
		}
		refs = union(refs, p)
	}
	return refs, nil
}

// Select returns the matching series that have data in the range, sorted by labels when asked
// (otherwise in ref order, as Prometheus's head gives them). Only the postings are resolved
// here; chunks and labels are read as the set is iterated, a batch of series at a time (see
// streamSet), from a snapshot taken now together with the open heads.
func (q *Querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt, trim := q.mint, q.maxt, true
	if hints != nil {
		mint, maxt, trim = hints.Start, hints.End, !hints.DisableTrimming
	}
	refs, err := q.postings(mint, maxt, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	withData := hints == nil || hints.Func != "series"
	s := q.newStreamSet(ctx, refs, mint, maxt, trim, withData)
	s.grid = stepGridFor(ctx, hints)
	if sortSeries {
		if err := s.sortByLabels(); err != nil {
			_ = s.close()
			return storage.ErrSeriesSet(err)
		}
	}
	return s
}

// track registers a set for Close: a caller may stop iterating a set before its end.
func (q *Querier) track(s *streamSet) {
	q.mu.Lock()
	q.sets = append(q.sets, s)
	q.mu.Unlock()
}

// chunks returns, per ref (ascending), the chunks that overlap [mint, maxt] in time order, or nil
// when none does, open head chunks included, read as Select reads them.
func (q *Querier) chunks(ctx context.Context, refs []uint64, mint, maxt int64, withData bool) ([][]storedChunk, error) {
	s := q.newStreamSet(ctx, refs, mint, maxt, true, withData)
	defer s.close()
	out := make([][]storedChunk, len(refs))
	for i, ref := range refs {
		cs, err := s.seriesChunks(ref, nil)
		if err != nil {
			return nil, err
		}
		out[i] = cs
	}
	return out, nil
}

// seriesLabels returns the labels of a series, from memory when the series is in the head.
func (db *DB) seriesLabels(r interface {
	Get([]byte) ([]byte, io.Closer, error)
}, ref uint64) (labels.Labels, error) {
	if s := db.series.getByRef(ref); s != nil {
		return s.lset, nil
	}
	v, closer, err := r.Get(labelsByRefKey(nil, ref))
	if err != nil {
		return labels.EmptyLabels(), err
	}
	defer closer.Close()
	return decodeLabels(v)
}

// LabelNames returns the label names of the series matching ms, sorted.
func (q *Querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names := map[string]struct{}{}
	if len(ms) == 0 {
		for _, part := range q.db.partitionsBetween(q.mint, q.maxt) {
			if err := q.db.index(q.snap).labelNames(part, names); err != nil {
				return nil, nil, err
			}
		}
	} else if err := q.forEachMatching(ctx, ms, func(ls labels.Labels) {
		ls.Range(func(l labels.Label) { names[l.Name] = struct{}{} })
	}); err != nil {
		return nil, nil, err
	}
	return sortedLimited(names, hints), nil, nil
}

// LabelValues returns the values of a label name among the series matching ms, sorted.
func (q *Querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	values := map[string]struct{}{}
	if len(ms) == 0 {
		for _, part := range q.db.partitionsBetween(q.mint, q.maxt) {
			if err := q.db.index(q.snap).labelValues(part, name, values); err != nil {
				return nil, nil, err
			}
		}
	} else if err := q.forEachMatching(ctx, ms, func(ls labels.Labels) {
		if v := ls.Get(name); v != "" {
			values[v] = struct{}{}
		}
	}); err != nil {
		return nil, nil, err
	}
	return sortedLimited(values, hints), nil, nil
}

func (q *Querier) forEachMatching(ctx context.Context, ms []*labels.Matcher, f func(labels.Labels)) error {
	refs, err := q.postings(q.mint, q.maxt, ms)
	if err != nil {
		return err
	}
	for i, ref := range refs {
		if i%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		ls, err := q.db.seriesLabels(q.snap, ref)
		if err != nil {
			return err
		}
		f(ls)
	}
	return nil
}

func sortedLimited(set map[string]struct{}, hints *storage.LabelHints) []string {
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if hints != nil && hints.Limit > 0 && len(out) > hints.Limit {
		out = out[:hints.Limit]
	}
	return out
}

// ChunkQuerier implements storage.ChunkQueryable by encoding the samples of Select again;
// only remote read uses it.
func (db *DB) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := db.newQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return chunkQuerier{q}, nil
}

type chunkQuerier struct{ *Querier }

func (q chunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(q.Querier.Select(ctx, sortSeries, hints, ms...))
}

// chunkSeries is a series whose samples are decoded lazily from its chunks.
type chunkSeries struct {
	lset       labels.Labels
	chunks     []storedChunk
	mint, maxt int64
	trim       bool
	grid       stepGrid // the steps that read the samples (see StepGrid); zero: all are read
}

func (s *chunkSeries) Labels() labels.Labels { return s.lset }

func (s *chunkSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	si, ok := it.(*seriesIterator)
	if !ok {
		si = &seriesIterator{}
	}
	mint, maxt := s.mint, s.maxt
	if !s.trim {
		mint, maxt = math.MinInt64, math.MaxInt64
	}
	si.reset(s.chunks, mint, maxt)
	if s.trim {
		si.grid = s.grid
	}
	return si
}

// seriesIterator walks the samples of consecutive, non-overlapping chunks within [mint, maxt].
type seriesIterator struct {
	chunks  []storedChunk
	next    int // index of the chunk to open next
	cur     chunkenc.Iterator
	curType chunkenc.ValueType
	// dec is cur when it is a decimal chunk, nil otherwise; decAll says that all of that chunk
	// is within [mint, maxt]. Decimal chunks are most of what is stored, and their samples
	// are decoded in slices already: Next and At read them without a call through cur.
	dec    *decimalIterator
	decAll bool
	// t and f are dec's current sample, copied when dec moves: the engine calls At, AtT and
	// AtST for every sample it reads, and a field of the iterator is cheaper to return than
	// an element of dec's slices (a pointer, an index and a bounds check each).
	t          int64
	f          float64
	mint, maxt int64
	// grid leaves out, of the decimal chunks read whole, samples no step of the query reads
	// (see StepGrid); its zero value leaves every sample in.
	grid  stepGrid
	err   error
	iters map[chunkenc.Encoding]chunkenc.Iterator // reused per encoding
}

func (it *seriesIterator) reset(chunks []storedChunk, mint, maxt int64) {
	iters := it.iters
	*it = seriesIterator{chunks: chunks, mint: mint, maxt: maxt, iters: iters}
	if it.iters == nil {
		it.iters = map[chunkenc.Encoding]chunkenc.Iterator{}
	}
}

// open makes the next chunk current; false when there is none or it cannot be read.
func (it *seriesIterator) open() bool {
	if it.next >= len(it.chunks) || it.err != nil {
		return false
	}
	c := it.chunks[it.next]
	it.next++
	cur, err := c.iterator(it.iters[c.enc])
	if err != nil {
		it.err = err
		return false
	}
	it.cur = cur
	it.iters[c.enc] = it.cur
	it.dec, _ = cur.(*decimalIterator)
	it.decAll = it.dec != nil && c.mint >= it.mint && c.maxt <= it.maxt
	return true
}

// drop forgets the current chunk.
func (it *seriesIterator) drop() { it.cur, it.dec, it.decAll = nil, nil, false }

func (it *seriesIterator) Next() chunkenc.ValueType {
	if it.decAll {
		if d := it.dec; d.i+1 < len(d.ts) {
			d.i++
			if it.grid.step > 0 {
				d.i = it.grid.skip(d.ts, d.i)
			}
			it.t, it.f = d.ts[d.i], d.vs[d.i]
			it.curType = chunkenc.ValFloat
			return chunkenc.ValFloat
		}
	}
	for it.err == nil {
		if it.cur == nil && !it.open() {
			break
		}
		vt := it.cur.Next()
		if vt == chunkenc.ValNone {
			if err := it.cur.Err(); err != nil {
				it.err = err
				break
			}
			it.drop()
			continue
		}
		t := it.cur.AtT()
		if t < it.mint {
			continue
		}
		if t > it.maxt {
			break
		}
		if d := it.dec; d != nil {
			// A chunk only partly in [mint, maxt]: what the grid leaves out up to maxt.
			if it.grid.step > 0 {
				if j := it.grid.skip(d.ts, d.i); d.ts[j] <= it.maxt {
					d.i = j
				}
			}
			it.t, it.f = d.At()
		}
		it.curType = vt
		return vt
	}
	it.drop()
	it.curType, it.next = chunkenc.ValNone, len(it.chunks)
	return chunkenc.ValNone
}

// NextFloats is Next for a run of floats (see storage.FloatRunIterator): when the samples
// after the current one are in a decimal chunk, it moves to the last of them within [mint,
// maxt] and returns their times and values, slices of the chunk's decoded samples that stay
// valid until the iterator moves again; never an empty run. Otherwise (another encoding,
// nothing left, a step grid thinning what Next returns, an error) it returns ok false, and
// Next goes on from the same sample.
func (it *seriesIterator) NextFloats() (ts []int64, vs []float64, ok bool) {
	for it.grid.step == 0 && it.err == nil {
		if it.cur == nil && !it.open() {
			break
		}
		d := it.dec
		if d == nil {
			break
		}
		lo, hi := d.i+1, len(d.ts)
		if !it.decAll {
			for lo < hi && d.ts[lo] < it.mint {
				lo++
			}
			for hi > lo && d.ts[hi-1] > it.maxt {
				hi--
			}
		}
		if lo < hi {
			d.i = hi - 1
			it.t, it.f, it.curType = d.ts[d.i], d.vs[d.i], chunkenc.ValFloat
			return d.ts[lo:hi], d.vs[lo:hi], true
		}
		if lo < len(d.ts) {
			// What is left is after maxt: the end, as Next finds it.
			it.drop()
			it.curType, it.next = chunkenc.ValNone, len(it.chunks)
			break
		}
		it.drop() // used up, or all of it before mint
	}
	return nil, nil, false
}

func (it *seriesIterator) Seek(t int64) chunkenc.ValueType {
	if it.curType != chunkenc.ValNone && it.cur != nil && it.AtT() >= t {
		return it.curType
	}
	t = max(t, it.mint)
	for it.err == nil {
		if it.cur == nil {
			for it.next < len(it.chunks) && it.chunks[it.next].maxt < t {
				it.next++
			}
			if !it.open() {
				break
			}
		}
		vt := it.cur.Seek(t)
		if vt == chunkenc.ValNone {
			if err := it.cur.Err(); err != nil {
				it.err = err
				break
			}
			it.drop()
			continue
		}
		if it.cur.AtT() > it.maxt {
			break
		}
		if it.dec != nil {
			it.t, it.f = it.dec.At()
		}
		it.curType = vt
		return vt
	}
	it.drop()
	it.curType, it.next = chunkenc.ValNone, len(it.chunks)
	return chunkenc.ValNone
}

func (it *seriesIterator) At() (int64, float64) {
	if it.dec != nil {
		return it.t, it.f
	}
	return it.cur.At()
}
func (it *seriesIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}
func (it *seriesIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}
func (it *seriesIterator) AtT() int64 {
	if it.dec != nil {
		return it.t
	}
	return it.cur.AtT()
}

// AtST is 0 in a decimal chunk: one with start timestamps is never stored as decimal.
func (it *seriesIterator) AtST() int64 {
	if it.dec != nil {
		return 0
	}
	return it.cur.AtST()
}
func (it *seriesIterator) Err() error { return it.err }
