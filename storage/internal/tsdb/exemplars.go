package tsdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// addExemplar buffers an exemplar of the series s. An exemplar without a timestamp takes its
// sample's; exemplars at the same series and timestamp replace each other.
func (a *Appender) addExemplar(s *memSeries, e exemplar.Exemplar) error {
	if n := e.Labels.Len(); n > 0 {
		runes := 0
		e.Labels.Range(func(l labels.Label) { runes += len([]rune(l.Name)) + len([]rune(l.Value)) })
		if runes > exemplar.ExemplarMaxLabelSetLength {
			return storage.ErrExemplarLabelLength
		}
	}
	a.exemplars = append(a.exemplars, pendingExemplar{s: s, e: e})
	return nil
}

// writeExemplars adds buffered exemplars to the batch. Caller holds writeMu.
func (db *DB) writeExemplars(b *pebble.Batch, pl *postingListWriter, exs []pendingExemplar) error {
	for _, pe := range exs {
		s := pe.s
		if s.removed {
			var err error
			if s, err = db.getOrCreate(s.lset); err != nil {
				return err
			}
		}
		if !s.persisted {
			continue // its sample was refused: an exemplar alone does not make a series
		}
		part := db.partition(pe.e.Ts)
		if err := db.ensureIndexed(b, pl, s, part); err != nil {
			return err
		}
		key := putInt64(exemplarSeriesPrefix(nil, part, s.ref), pe.e.Ts)
		v := binary.BigEndian.AppendUint64(nil, math.Float64bits(pe.e.Value))
		_ = b.Set(key, encodeLabels(v, pe.e.Labels), nil)
		db.stats.ExemplarsAppended.Add(1)
	}
	return nil
}

// exemplarQuerier reads exemplars through a snapshot.
type exemplarQuerier struct{ db *DB }

// ExemplarQuerier implements storage.ExemplarQueryable.
func (db *DB) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return exemplarQuerier{db: db}, nil
}

// Select returns the exemplars in [start, end] of the series that match any of the matcher
// sets, grouped by series, series in label order, exemplars in time order.
func (q exemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	if err := q.db.acquire(); err != nil {
		return nil, err
	}
	defer q.db.release()
	snap := q.db.pdb.NewSnapshot()
	defer snap.Close()
	parts := q.db.partitionsBetween(start, end)

	byRef := map[uint64]*exemplar.QueryResult{}
	for _, part := range parts {
		refs := map[uint64]struct{}{}
		for _, ms := range matchers {
			p, err := q.db.index(snap).postingsForMatchers(part, ms)
			if err != nil {
				return nil, err
			}
			for _, r := range p {
				refs[r] = struct{}{}
			}
		}
		for ref := range refs {
			prefix := exemplarSeriesPrefix(nil, part, ref)
			upper := prefixEnd(prefix) // end is inclusive; end+1 would overflow at math.MaxInt64
			if end < math.MaxInt64 {
				upper = putInt64(slices.Clone(prefix), end+1)
			}
			it, err := snap.NewIter(&pebble.IterOptions{
				LowerBound: putInt64(slices.Clone(prefix), start), UpperBound: upper})
			if err != nil {
				return nil, err
			}
			for it.First(); it.Valid(); it.Next() {
				k, v := it.Key(), it.Value()
				if len(v) < 8 || len(k) != len(prefix)+8 {
					_ = it.Close()
					return nil, fmt.Errorf("%w: exemplar", errCorruptKey)
				}
				ls, err := decodeLabels(v[8:])
				if err != nil {
					_ = it.Close()
					return nil, err
				}
				r := byRef[ref]
				if r == nil {
					sl, err := q.db.seriesLabels(snap, ref)
					if err != nil {
						_ = it.Close()
						return nil, err
					}
					r = &exemplar.QueryResult{SeriesLabels: sl}
					byRef[ref] = r
				}
				r.Exemplars = append(r.Exemplars, exemplar.Exemplar{
					Labels: ls, Value: math.Float64frombits(binary.BigEndian.Uint64(v)),
					Ts: getInt64(k[len(prefix):]), HasTs: true})
			}
			if err := it.Close(); err != nil {
				return nil, err
			}
		}
	}
	out := make([]exemplar.QueryResult, 0, len(byRef))
	for _, r := range byRef {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b exemplar.QueryResult) int { return labels.Compare(a.SeriesLabels, b.SeriesLabels) })
	return out, nil
}
