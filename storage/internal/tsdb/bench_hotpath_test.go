package tsdb

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Benchmarks of the store's hot paths, one piece at a time, so that a change to one is measured
// in isolation. BenchmarkAppend (bench_test.go) measures append and commit together.

// realisticChunk is 120 samples of series s, 15 s apart with a little jitter, valued as
// realisticValue makes them (counters for even s, two-decimal gauges for odd s).
func realisticChunk(s int, rng *rand.Rand) (ts []int64, vs []float64) {
	t := int64(1_700_000_000_000)
	for r := range int64(samplesPerChunk) {
		t += 15_000 + rng.Int64N(5)
		ts, vs = append(ts, t), append(vs, realisticValue(s, r))
	}
	return ts, vs
}

// BenchmarkChunkEncode encodes closed chunks the way a cut writes them (XOR2 as built by the
// head, then the packed layout when it applies, or the decimal one of older versions) and reads them back; it reports the bytes per
// sample of each layout before Pebble's block compression.
func BenchmarkChunkEncode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	var chunks []*chunkBuilder
	for s := range 64 {
		ts, vs := realisticChunk(s, rng)
		c := &chunkBuilder{}
		for i := range ts {
			if err := c.append(sample{t: ts[i], f: vs[i]}, 0, func(*chunkBuilder) {}); err != nil {
				b.Fatal(err)
			}
		}
		chunks = append(chunks, c)
	}
	encoders := map[string]func([]byte, *chunkBuilder, *decimalScratch) []byte{
		"xor2":    func(b []byte, c *chunkBuilder, _ *decimalScratch) []byte { return encodeChunkValue(b, c) },
		"decimal": encodeDecimalChunkValue,
		"packed":  encodeStoredChunkValue,
	}
	for _, layout := range []string{"xor2", "decimal", "packed"} {
		encode := encoders[layout]
		b.Run(layout, func(b *testing.B) {
			var sc decimalScratch
			var buf []byte
			var bytes int
			b.ReportAllocs()
			for i := range b.N {
				c := chunks[i%len(chunks)]
				buf = encode(buf[:0], c, &sc)
				bytes += len(buf)
			}
			b.ReportMetric(float64(bytes)/float64(b.N*samplesPerChunk), "B/sample")
		})
		b.Run(layout+"/decode", func(b *testing.B) {
			var sc decimalScratch
			var stored []storedChunk
			for _, c := range chunks {
				v := encode(nil, c, &sc)
				sc, err := decodeChunkValue(c.mint, v, true)
				if err != nil {
					b.Fatal(err)
				}
				stored = append(stored, sc)
			}
			var it chunkenc.Iterator
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var err error
				if it, err = stored[i%len(stored)].iterator(it); err != nil {
					b.Fatal(err)
				}
				for it.Next() != chunkenc.ValNone {
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*samplesPerChunk), "ns/sample")
		})
	}
}

// BenchmarkSampleLog is the write of one commit's log record (2,000 samples, no fsync): the
// per-commit cost the log adds.
func BenchmarkSampleLog(b *testing.B) {
	l, _, err := openSampleLog(vfs.Default, b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	var rec logRecord
	b.ReportAllocs()
	for i := range b.N {
		rec.reset()
		for s := range 2000 {
			rec.samples = appendLogSample(rec.samples, uint64(s), sample{t: int64(i) * 15_000, f: float64(i)})
		}
		if err := l.write(rec.framed()); err != nil {
			b.Fatal(err)
		}
		if l.bytes > 64<<20 {
			old, _ := l.rotate()
			_ = l.remove(old)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*2000), "ns/sample")
}

// BenchmarkCheckpoint writes the open heads of 10,000 series that each gained samples since the
// last checkpoint: quick, as the timer or the log size triggers it, and packed, as a clean close
// writes them.
func BenchmarkCheckpoint(b *testing.B) {
	b.Run("quick", func(b *testing.B) { benchCheckpoint(b, headsQuick) })
	b.Run("packed", func(b *testing.B) { benchCheckpoint(b, headsPacked) })
}

func benchCheckpoint(b *testing.B, packed bool) {
	series := benchSeries(10_000)
	db, err := Open(b.TempDir(), Options{CheckpointInterval: time.Hour, CheckpointBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	fillDataset(b, db, series, 30)
	round := int64(30)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		app := db.AppenderV2(context.Background())
		for s, ls := range series {
			if _, err := app.Append(0, ls, 0, 1_700_000_000_000+round*15_000, realisticValue(s, round), nil, nil, storage.AOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
		round++
		b.StartTimer()
		db.writeMu.Lock()
		err := db.checkpointLocked(packed)
		db.writeMu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(series)), "ns/head")
}

// BenchmarkSelectMatchers resolves matchers through the postings of a partition and reads the selected
// series' samples over 6 h of 1,000 series from a reopened (compacted) store: the store's share
// of a query.
func BenchmarkSelectMatchers(b *testing.B) {
	dir := b.TempDir()
	series := benchSeries(1000)
	db, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	fillDataset(b, db, series, 6*60*4)
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	if db, err = Open(dir, Options{}); err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	mint, maxt := int64(1_700_000_000_000), int64(1_700_000_000_000+6*3600*1000)
	cases := map[string][]*labels.Matcher{
		"one name":       {labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_7")},
		"name and regex": {labels.MustNewMatcher(labels.MatchEqual, "__name__", "metric_7"), labels.MustNewMatcher(labels.MatchRegexp, "cpu", "1|3|5")},
		"all series":     {labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")},
	}
	for name, ms := range cases {
		b.Run(name, func(b *testing.B) {
			var samples int
			var it chunkenc.Iterator
			b.ReportAllocs()
			for range b.N {
				q, err := db.Querier(mint, maxt)
				if err != nil {
					b.Fatal(err)
				}
				set := q.Select(context.Background(), false, nil, ms...)
				for set.Next() {
					it = set.At().Iterator(it)
					for it.Next() != chunkenc.ValNone {
						samples++
					}
				}
				if err := set.Err(); err != nil {
					b.Fatal(err)
				}
				_ = q.Close()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(samples), "ns/sample")
		})
	}
}

// BenchmarkReplay opens, after a crash, a store whose sample log holds 100,000 series × 28
// samples (what a 64 MiB log holds) (no checkpoint since they were written): the restart after a kill -9, replay and its
// checkpoint included. Reports ns per replayed sample.
func BenchmarkReplay(b *testing.B) {
	series := benchSeries(100_000)
	fs := vfs.NewCrashableMem()
	opts := Options{FS: fs, CheckpointInterval: time.Hour, CheckpointBytes: 1 << 40}
	db, err := Open("db", opts)
	if err != nil {
		b.Fatal(err)
	}
	n := fillDataset(b, db, series, 28)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		o := opts
		o.FS = fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
		b.StartTimer()
		rdb, err := Open("db", o)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		_ = rdb.Close()
		b.StartTimer()
	}
	b.StopTimer()
	_ = db.Close()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(int64(b.N)*n), "ns/sample")
}
