package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// BenchmarkSelect times Select alone, outside the engine: 2,000 series with 6 h of 15 s samples,
// stored and reopened. "first" is the time to the first series of a Select of all of them;
// "all" expands the set then reads every sample, as Prometheus's engine does.
func BenchmarkSelect(b *testing.B) {
	const rounds = 6 * 60 * 4
	dir := b.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	fillDataset(b, db, benchSeries(2000), rounds)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if db, err = Open(dir, Options{}); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	mint, maxt := int64(1_700_000_000_000), int64(1_700_000_000_000+rounds*15_000)
	all := labels.MustNewMatcher(labels.MatchEqual, "job", "node")
	hints := &storage.SelectHints{Start: mint, End: maxt, Step: time.Minute.Milliseconds()}
	// selectAllSeries expands a Select of every series; the caller closes the querier.
	selectAllSeries := func(b *testing.B) (storage.Querier, []storage.Series) {
		q, err := db.Querier(mint, maxt)
		if err != nil {
			b.Fatal(err)
		}
		ss := q.Select(context.Background(), false, hints, all)
		var series []storage.Series
		for ss.Next() {
			series = append(series, ss.At())
		}
		if ss.Err() != nil {
			b.Fatal(ss.Err())
		}
		return q, series
	}
	b.Run("first", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			q, err := db.Querier(mint, maxt)
			if err != nil {
				b.Fatal(err)
			}
			ss := q.Select(context.Background(), false, hints, all)
			if !ss.Next() {
				b.Fatal(ss.Err())
			}
			_ = q.Close()
		}
	})
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		var it chunkenc.Iterator
		cpu0 := processCPU(b)
		for range b.N {
			q, series := selectAllSeries(b)
			for _, s := range series {
				it = s.Iterator(it)
				for it.Next() != chunkenc.ValNone {
				}
			}
			_ = q.Close()
		}
		// CPU time besides wall time: on a shared machine it varies less.
		b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
	// "steps" reads every series as the engine's instant vector selector does at each step of
	// a range query (step 60 s, lookback 5 m): Seek through a memoizing iterator, then the
	// sample's value and start time, as q10 of the server benchmark (count of every series).
	b.Run("steps", func(b *testing.B) {
		b.ReportAllocs()
		var it chunkenc.Iterator
		mi := storage.NewMemoizedEmptyIterator((5 * time.Minute).Milliseconds())
		var sum float64
		cpu0 := processCPU(b)
		for range b.N {
			q, series := selectAllSeries(b)
			for _, s := range series {
				it = s.Iterator(it)
				mi.Reset(it)
				for ts := mint; ts <= maxt; ts += hints.Step {
					if mi.Seek(ts) == chunkenc.ValFloat {
						_, f := mi.At()
						sum += f + float64(mi.AtST())
					}
				}
			}
			_ = q.Close()
		}
		b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		if sum == 0 {
			b.Fatal("no sample read")
		}
	})
}
