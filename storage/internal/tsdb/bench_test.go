package tsdb

import (
	"context"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
)

// benchSeries builds n label sets shaped like scraped node metrics.
func benchSeries(n int) []labels.Labels {
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = labels.FromStrings(
			"__name__", fmt.Sprintf("metric_%d", i%100),
			"instance", fmt.Sprintf("host-%d:9100", i/100),
			"job", "node",
			"cpu", fmt.Sprint(i%8))
	}
	return out
}

// benchAppend appends b.N samples round-robin over the series, committing every batchSize
// samples, the way remote write batches arrive. Each round advances time by 15s; values are
// counters that grow by small integers, as most scraped data does.
func benchAppend(b *testing.B, appendable storage.AppendableV2, series []labels.Labels, batchSize int) {
	refs := make([]storage.SeriesRef, len(series))
	app := appendable.AppenderV2(context.Background())
	inBatch := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := i % len(series)
		round := int64(i / len(series))
		ref, err := app.Append(refs[s], series[s], 0, 1_700_000_000_000+round*15_000, float64(round*int64(s%7+1)), nil, nil, storage.AOptions{})
		if err != nil {
			b.Fatal(err)
		}
		refs[s] = ref
		if inBatch++; inBatch == batchSize {
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
			app = appendable.AppenderV2(context.Background())
			inBatch = 0
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkAppend compares the write path with Prometheus's own TSDB on the same workload, in
// the same run; compare the ratio, not absolute numbers (shared, noisy machines).
func BenchmarkAppend(b *testing.B) {
	series := benchSeries(10_000)
	b.Run("metricstor", func(b *testing.B) {
		db, err := Open(b.TempDir(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchAppend(b, db, series, 2000)
	})
	b.Run("prometheus", func(b *testing.B) {
		db, err := promtsdb.Open(b.TempDir(), nil, nil, promtsdb.DefaultOptions(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchAppend(b, db, series, 2000)
	})
}
