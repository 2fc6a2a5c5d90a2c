package tsdb

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
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
	cpuBefore := processCPU(b)
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
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpuBefore).Nanoseconds())/float64(b.N), "cpu-ns/sample")
}

// processCPU is the user and system CPU time of the process so far: the figure DESIGN.md's goals
// are stated in, since wall time includes waiting for fsync.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// BenchmarkAppendKnown100k appends to 100,000 series that exist already (their first round is
// appended before the timer starts), in batches of 2,000: the steady state of a large remote
// write sender, where the series, their chunks and index lists no longer fit in the CPU's
// caches and what a sample costs is mostly the memory it touches.
func BenchmarkAppendKnown100k(b *testing.B) {
	series := benchSeries(100_000)
	db, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	refs := make([]storage.SeriesRef, len(series))
	app := db.AppenderV2(context.Background())
	for s, ls := range series {
		if refs[s], err = app.Append(0, ls, 0, 1_700_000_000_000, 1, nil, nil, storage.AOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpuBefore := processCPU(b)
	app = db.AppenderV2(context.Background())
	inBatch := 0
	i := len(series)
	for b.Loop() {
		s := i % len(series)
		round := int64(i / len(series))
		if _, err := app.Append(refs[s], series[s], 0, 1_700_000_000_000+round*15_000, realisticValue(s, round), nil, nil, storage.AOptions{}); err != nil {
			b.Fatal(err)
		}
		if inBatch++; inBatch == 2000 {
			if err := app.Commit(); err != nil {
				b.Fatal(err)
			}
			app = db.AppenderV2(context.Background())
			inBatch = 0
		}
		i++
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((processCPU(b)-cpuBefore).Nanoseconds())/float64(b.N), "cpu-ns/sample")
}

// realisticValue gives series s at round r a value shaped like scraped data: counters growing
// by small integers, gauges wandering with two decimals.
func realisticValue(s int, r int64) float64 {
	if s%2 == 0 {
		return float64(r * int64(s%13+1))
	}
	return float64(int64(50_00+(r*int64(s%7+3))%2000)) / 100
}

// fillDataset appends rounds of one sample per series, 15 s apart, in batches of 2,000.
func fillDataset(b *testing.B, appendable storage.AppendableV2, series []labels.Labels, rounds int) int64 {
	refs := make([]storage.SeriesRef, len(series))
	app := appendable.AppenderV2(context.Background())
	n := 0
	for r := range int64(rounds) {
		for s, ls := range series {
			ref, err := app.Append(refs[s], ls, 0, 1_700_000_000_000+r*15_000, realisticValue(s, r), nil, nil, storage.AOptions{})
			if err != nil {
				b.Fatal(err)
			}
			refs[s] = ref
			if n++; n%2000 == 0 {
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
				app = appendable.AppenderV2(context.Background())
			}
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
	return int64(n)
}

// liveTableBytes is the size of the database's live tables, the steady-state cost; the
// write-ahead log is left out, as Prometheus's is when its blocks are measured.
func liveTableBytes(db *DB) int64 {
	var size int64
	for _, l := range db.pdb.Metrics().Levels {
		size += l.TablesSize
	}
	return size
}

// BenchmarkDiskAndQuery fills 1,000 series with 6 h of 15 s samples into each store, closes it
// (Prometheus compacts its head into a block first), reports disk bytes per sample, then times
// range queries over the whole span through Prometheus's engine.
func BenchmarkDiskAndQuery(b *testing.B) {
	const rounds = 6 * 60 * 4
	series := benchSeries(1000)
	queries := []string{
		`rate(metric_2[5m])`,
		`sum by (instance) (rate(metric_4[5m]))`,
		`avg_over_time(metric_1[10m])`,
		`max(metric_3)`,
	}
	start := time.UnixMilli(1_700_000_000_000)
	end := start.Add(6 * time.Hour)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 100_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	runQueries := func(b *testing.B, q storage.Queryable) {
		b.ResetTimer()
		for range b.N {
			for _, qs := range queries {
				qry, err := engine.NewRangeQuery(context.Background(), q, nil, qs, start, end, time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if res := qry.Exec(context.Background()); res.Err != nil {
					b.Fatal(res.Err)
				}
				qry.Close()
			}
		}
	}

	b.Run("metricstor", func(b *testing.B) {
		dir := b.TempDir()
		db, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		n := fillDataset(b, db, series, rounds)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		if db, err = Open(dir, Options{}); err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, false); err != nil {
			b.Fatal(err)
		}
		size := liveTableBytes(db)
		runQueries(b, db)
		b.ReportMetric(float64(size)/float64(n), "disk-B/sample")
	})
	b.Run("prometheus", func(b *testing.B) {
		dir := b.TempDir()
		db, err := promtsdb.Open(dir, nil, nil, promtsdb.DefaultOptions(), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		n := fillDataset(b, db, series, rounds)
		if err := db.CompactHead(promtsdb.NewRangeHead(db.Head(), 1_700_000_000_000, 1_700_000_000_000+rounds*15_000)); err != nil {
			b.Fatal(err)
		}
		if err := db.Head().Truncate(1_700_000_000_000 + rounds*15_000 + 1); err != nil {
			b.Fatal(err)
		}
		var blocks int64
		for _, blk := range db.Blocks() {
			blocks += blk.Size()
		}
		runQueries(b, db)
		b.ReportMetric(float64(blocks)/float64(n), "disk-B/sample")
	})
}

// BenchmarkHeadMemory reports the Go heap each store holds per active series after 100,000
// series received 10 samples each (DESIGN.md's "peak RSS with 100k active series", minus the
// runtime and the collector around the store), and for Metricstor also after 100 samples each,
// where the open head chunks have grown (metricstor_100_samples).
func BenchmarkHeadMemory(b *testing.B) {
	series := benchSeries(100_000)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	measure := func(b *testing.B, rounds int, open func(dir string) (storage.AppendableV2, func() error)) {
		for range b.N {
			before := heap()
			db, closeDB := open(b.TempDir())
			fillDataset(b, db, series, rounds)
			after := heap()
			b.ReportMetric(float64(after-before)/float64(len(series)), "heap-B/series")
			if err := closeDB(); err != nil {
				b.Fatal(err)
			}
		}
	}
	openMetricstor := func(dir string) (storage.AppendableV2, func() error) {
		db, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		return db, db.Close
	}
	b.Run("metricstor", func(b *testing.B) { measure(b, 10, openMetricstor) })
	b.Run("metricstor_100_samples", func(b *testing.B) { measure(b, 100, openMetricstor) })
	b.Run("prometheus", func(b *testing.B) {
		measure(b, 10, func(dir string) (storage.AppendableV2, func() error) {
			db, err := promtsdb.Open(dir, nil, nil, promtsdb.DefaultOptions(), nil)
			if err != nil {
				b.Fatal(err)
			}
			return db, db.Close
		})
	})
}
