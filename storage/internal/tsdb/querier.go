package tsdb

import (
	"bytes"
	"context"
	"fmt"
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

// Close releases the snapshot.
func (q *Querier) Close() error {
	var err error
	q.closeOnce.Do(func() {
		err = q.snap.Close()
		q.db.release()
	})
	return err
}

// postings returns the refs of the series matching ms in any partition of [mint, maxt].
func (q *Querier) postings(mint, maxt int64, ms []*labels.Matcher) ([]uint64, error) {
	var refs []uint64
	for _, part := range q.db.partitionsBetween(mint, maxt) {
		p, err := postingsForMatchers(q.snap, part, ms)
		if err != nil {
			return nil, err
		}
		refs = union(refs, p)
	}
	return refs, nil
}

// Select returns the matching series that have data in the range, sorted by labels.
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
	chunks, err := q.chunks(ctx, refs, mint, maxt, withData)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	// Only the series with data in the range are returned.
	kept := refs[:0]
	keptChunks := chunks[:0]
	for i, ref := range refs {
		if chunks[i] != nil {
			kept = append(kept, ref)
			keptChunks = append(keptChunks, chunks[i])
		}
	}
	lsets, err := q.db.labelsOf(q.snap, kept)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	series := make([]storage.Series, len(kept))
	for i := range kept {
		series[i] = &chunkSeries{lset: lsets[i], chunks: keptChunks[i], mint: mint, maxt: maxt, trim: trim}
	}
	// Unsorted, the series come in ref order, as Prometheus's head gives them.
	if sortSeries {
		slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &listSeriesSet{series: series}
}

// chunks returns, per ref, the chunks that overlap [mint, maxt] in time order, or nil when none
// does, open head chunks included. Head chunks whose newest samples only the sample log has are
// copied from memory together with a fresh snapshot, under writeMu, so that the two agree: a
// chunk cut after the querier's own snapshot is then in the fresh one.
func (q *Querier) chunks(ctx context.Context, refs []uint64, mint, maxt int64, withData bool) ([][]storedChunk, error) {
	db := q.db
	heads := map[int]storedChunk{}
	db.writeMu.Lock()
	snap := db.pdb.NewSnapshot()
	if len(db.unsynced) > 0 {
		for i, ref := range refs {
			s := db.series.getByRef(ref)
			if s == nil || s.head.chunk == nil || !s.head.dirty {
				continue
			}
			h := storedChunk{mint: s.head.mint, maxt: s.head.maxt, enc: s.head.chunk.Encoding()}
			if withData {
				h.data = append([]byte(nil), s.head.chunk.Bytes()...)
			}
			heads[i] = h
		}
	}
	db.writeMu.Unlock()
	defer snap.Close()

	out, err := q.loadChunks(ctx, snap, refs, mint, maxt, withData)
	if err != nil {
		return nil, err
	}
	for i, h := range heads {
		// The stored chunk with the head's mint, if any, is an older prefix of the head.
		cs := out[i]
		for j := range cs {
			if cs[j].mint == h.mint {
				cs = append(cs[:j], cs[j+1:]...)
				break
			}
		}
		if h.maxt >= mint && h.mint <= maxt {
			cs = append(cs, h)
		}
		if len(cs) == 0 {
			cs = nil
		}
		out[i] = cs
	}
	return out, nil
}

// loadChunks returns, per ref, the stored chunks that overlap [mint, maxt] in time order, or nil
// when none does. With withData false the chunks carry only their time range.
func (q *Querier) loadChunks(ctx context.Context, r iterReader, refs []uint64, mint, maxt int64, withData bool) ([][]storedChunk, error) {
	out := make([][]storedChunk, len(refs))
	for _, part := range q.db.partitionsBetween(mint, maxt) {
		prefix := chunkPartPrefix(nil, part)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, err
		}
		var seek []byte
		for i, ref := range refs {
			if i%1024 == 0 && ctx.Err() != nil {
				_ = it.Close()
				return nil, ctx.Err()
			}
			seek = chunkSeriesPrefix(seek[:0], part, ref)
			// Refs ascend like the keys: when the iterator already stands at or past this
			// series' first possible key (it stopped at the key after the previous series),
			// that key is where a seek would land, and a seek costs index block reads.
			valid := it.Valid() && bytes.Compare(it.Key(), seek) >= 0
			if !valid {
				valid = it.SeekGE(seek)
			}
			for ; valid; valid = it.Next() {
				_, r, cmint, err := parseChunkKey(it.Key())
				if err != nil {
					_ = it.Close()
					return nil, err
				}
				if r != ref || cmint > maxt {
					break
				}
				c, err := decodeChunkValue(cmint, it.Value(), withData)
				if err != nil {
					_ = it.Close()
					return nil, err
				}
				if c.maxt < mint {
					continue
				}
				if !withData {
					c.data = nil
				}
				out[i] = append(out[i], c)
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// labelsOf returns the labels of series given in ascending ref order: from memory for series in
// the head, otherwise from their l keys, read with one iterator walking forward.
func (db *DB) labelsOf(snap *pebble.Snapshot, refs []uint64) ([]labels.Labels, error) {
	out := make([]labels.Labels, len(refs))
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	var key []byte
	for i, ref := range refs {
		if s := db.series.getByRef(ref); s != nil {
			out[i] = s.lset
			continue
		}
		if it == nil {
			var err error
			it, err = snap.NewIter(&pebble.IterOptions{
				LowerBound: []byte{famLabelsByRef}, UpperBound: []byte{famLabelsByRef + 1}})
			if err != nil {
				return nil, err
			}
		}
		key = labelsByRefKey(key[:0], ref)
		// Refs ascend: step forward a few keys before paying for a seek.
		valid := it.Valid()
		for n := 0; valid && n < 8 && bytes.Compare(it.Key(), key) < 0; n++ {
			valid = it.Next()
		}
		if !valid || bytes.Compare(it.Key(), key) < 0 {
			valid = it.SeekGE(key)
		}
		if !valid || !bytes.Equal(it.Key(), key) {
			if err := it.Error(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("labels of series %d: %w", ref, pebble.ErrNotFound)
		}
		ls, err := decodeLabels(it.Value())
		if err != nil {
			return nil, err
		}
		out[i] = ls
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
			if err := labelNames(q.snap, part, names); err != nil {
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
			if err := labelValues(q.snap, part, name, values); err != nil {
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

type listSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *listSeriesSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}
func (s *listSeriesSet) At() storage.Series              { return s.series[s.i-1] }
func (*listSeriesSet) Err() error                        { return nil }
func (*listSeriesSet) Warnings() annotations.Annotations { return nil }

// chunkSeries is a series whose samples are decoded lazily from its chunks.
type chunkSeries struct {
	lset       labels.Labels
	chunks     []storedChunk
	mint, maxt int64
	trim       bool
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
	return si
}

// seriesIterator walks the samples of consecutive, non-overlapping chunks within [mint, maxt].
type seriesIterator struct {
	chunks     []storedChunk
	next       int // index of the chunk to open next
	cur        chunkenc.Iterator
	curType    chunkenc.ValueType
	mint, maxt int64
	err        error
	iters      map[chunkenc.Encoding]chunkenc.Iterator // reused per encoding
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
	return true
}

func (it *seriesIterator) Next() chunkenc.ValueType {
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
			it.cur = nil
			continue
		}
		t := it.cur.AtT()
		if t < it.mint {
			continue
		}
		if t > it.maxt {
			break
		}
		it.curType = vt
		return vt
	}
	it.curType, it.cur, it.next = chunkenc.ValNone, nil, len(it.chunks)
	return chunkenc.ValNone
}

func (it *seriesIterator) Seek(t int64) chunkenc.ValueType {
	if it.curType != chunkenc.ValNone && it.cur != nil && it.cur.AtT() >= t {
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
			it.cur = nil
			continue
		}
		if it.cur.AtT() > it.maxt {
			break
		}
		it.curType = vt
		return vt
	}
	it.curType, it.cur, it.next = chunkenc.ValNone, nil, len(it.chunks)
	return chunkenc.ValNone
}

func (it *seriesIterator) At() (int64, float64) { return it.cur.At() }
func (it *seriesIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}
func (it *seriesIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}
func (it *seriesIterator) AtT() int64  { return it.cur.AtT() }
func (it *seriesIterator) AtST() int64 { return it.cur.AtST() }
func (it *seriesIterator) Err() error  { return it.err }
