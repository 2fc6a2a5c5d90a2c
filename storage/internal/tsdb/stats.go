package tsdb

import (
	"cmp"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/index"
)

// HeadStats describes the head: the series the DB holds in memory (its series registry), which
// are those appended to within the head collection grace (an hour plus the out-of-order
// window) of the newest sample, and those looked up since the last collection. It is what
// Prometheus's head block, the last 2-3 hours, describes in /api/v1/status/tsdb. Unlike
// Prometheus's head it is not rebuilt at open: after a clean close (which writes the heads out)
// it holds the series appended to since; after a crash, those the sample log replayed.
type HeadStats struct {
	NumSeries uint64
	// ChunkCount is the number of open head chunks (at most one per series).
	ChunkCount int64
	// MinTime is the oldest sample of an open head chunk and MaxTime the newest sample of a
	// head series; math.MaxInt64 and math.MinInt64 when the head holds none (as Prometheus's
	// empty head).
	MinTime, MaxTime int64
	// Postings holds the cardinality statistics as Prometheus's MemPostings.Stats computes them
	// from the head's postings, over the same series.
	Postings *index.PostingsStats
}

// HeadStats computes the head's statistics. statsByLabelName names the label whose values
// SeriesCountByMetricName counts (Prometheus passes __name__); every list holds the limit
// largest entries, largest first.
//
// It walks the registry lock-free (refIndex.each); a series' newest sample is read under its
// own mutex and its open head under headMu, taken per series, so that commits wait at most
// for one series' read, never for the whole walk. The counts are therefore not one point in
// time when series are created or collected meanwhile, as Prometheus's are not either.
func (db *DB) HeadStats(statsByLabelName string, limit int) (*HeadStats, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()

	st := &HeadStats{MinTime: math.MaxInt64, MaxTime: math.MinInt64}
	// postings[name][value] counts the head series with that label pair, as MemPostings does.
	postings := map[string]map[string]uint64{}
	db.series.byRef.each(func(s *memSeries) {
		st.NumSeries++
		s.lset.Range(func(l labels.Label) {
			values := postings[l.Name]
			if values == nil {
				values = map[string]uint64{}
				postings[l.Name] = values
			}
			values[l.Value]++
		})
		s.mu.Lock()
		maxT := s.maxT()
		s.mu.Unlock()
		st.MaxTime = max(st.MaxTime, maxT)
		db.headMu.RLock()
		if s.head.open() {
			st.ChunkCount++
			st.MinTime = min(st.MinTime, s.head.mint)
		}
		db.headMu.RUnlock()
	})
	st.Postings = postingsStats(postings, statsByLabelName, limit)
	return st, nil
}

// postingsStats is Prometheus's MemPostings.Stats over postings counts, with
// labels.SizeOfLabels as the memory estimate.
func postingsStats(postings map[string]map[string]uint64, label string, limit int) *index.PostingsStats {
	var metrics, names, sizes, pairs []index.Stat
	numLabelPairs := 0
	for name, values := range postings {
		names = append(names, index.Stat{Name: name, Count: uint64(len(values))})
		numLabelPairs += len(values)
		var size uint64
		for value, n := range values {
			if name == label {
				metrics = append(metrics, index.Stat{Name: value, Count: n})
			}
			pairs = append(pairs, index.Stat{Name: name + "=" + value, Count: n})
			size += labels.SizeOfLabels(name, value, n)
		}
		sizes = append(sizes, index.Stat{Name: name, Count: size})
	}
	return &index.PostingsStats{
		CardinalityMetricsStats: topN(metrics, limit),
		CardinalityLabelStats:   topN(names, limit),
		LabelValueStats:         topN(sizes, limit),
		LabelValuePairsStats:    topN(pairs, limit),
		NumLabelPairs:           numLabelPairs,
	}
}

// topN returns the limit largest stats, largest first; equal counts by name, so that the
// answer does not depend on map order. Never nil, so that the API answers [] rather than null.
func topN(stats []index.Stat, limit int) []index.Stat {
	slices.SortFunc(stats, func(a, b index.Stat) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if len(stats) > limit {
		stats = stats[:limit]
	}
	if stats == nil {
		stats = []index.Stat{}
	}
	return stats
}
