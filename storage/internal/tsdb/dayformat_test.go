package tsdb

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
	"github.com/metricstor/metricstor/testbed/loadgen"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// BenchmarkDayChunkBytes measures, offline, what the server benchmark's day (2,000 loadgen series ×
// 5,760 samples 15 s apart) costs on disk per sample in each closed-chunk layout: the chunks are
// cut as the store cuts them (chunkBuilder.append: 120 samples, partition boundaries), their
// keys and values laid into 32 KiB blocks with the keys prefix-compressed as in an sstable, and
// each block compressed with zstd level 3 as Pebble does. It reports bytes per sample before
// and after zstd, in all and by metric (each metric's chunks compressed apart). It is a
// measuring tool (about 10 s of CPU): go test -run '^$' -bench BenchmarkDayChunkBytes -benchtime 1x -v
// (-v shows the table by metric). It reports the packed layout's bytes per sample after zstd.
func BenchmarkDayChunkBytes(b *testing.B) {
	var t testing.TB = b
	const (
		series  = 2000
		samples = 24 * 3600 / 15
		partMs  = 24 * 3600 * 1000
	)
	end := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC).UnixMilli()
	type chunkRec struct {
		part, mint int64
		ref        uint64
		metric     string
		c          *chunkBuilder
	}
	// METRICSTOR_DAY_CHUNK=240 measures closed chunks of 240 samples instead (a proposal, not
	// what the store cuts): chunks are then built here, not by chunkBuilder.append.
	perChunk := samplesPerChunk
	if v := os.Getenv("METRICSTOR_DAY_CHUNK"); v != "" {
		if _, err := fmt.Sscan(v, &perChunk); err != nil || perChunk < 1 || perChunk > maxPackedSamples {
			t.Fatalf("METRICSTOR_DAY_CHUNK=%q: samples per chunk, 1..%d", v, maxPackedSamples)
		}
	}
	var chunks []chunkRec
	for id := range series {
		name := loadgen.Labels(id)[0].Value
		var c chunkBuilder
		emit := func(cb *chunkBuilder) {
			cp := *cb
			chunks = append(chunks, chunkRec{part: cp.part, mint: cp.mint, ref: uint64(id + 1), metric: name, c: &cp})
		}
		for r := range samples {
			ts := end - int64(samples-1-r)*15_000
			part := ts / partMs * partMs
			if perChunk != samplesPerChunk {
				if !c.open() || c.part != part || c.floats >= int32(perChunk) {
					if c.open() {
						emit(&c)
					}
					chk := chunkenc.NewXOR2Chunk()
					app, _ := chk.Appender()
					c = chunkBuilder{part: part, mint: ts}
					c.setOther(chk, app)
				}
				c.other.app.Append(0, ts, loadgen.Value(id, r))
				c.floats++
				c.maxt = ts
				continue
			}
			if err := c.append(sample{t: ts, f: loadgen.Value(id, r)}, part, emit); err != nil {
				t.Fatal(err)
			}
		}
		emit(&c)
	}
	// Pebble's order: partition, series, mint.
	sort.Slice(chunks, func(i, j int) bool {
		a, b := chunks[i], chunks[j]
		if a.part != b.part {
			return a.part < b.part
		}
		if a.ref != b.ref {
			return a.ref < b.ref
		}
		return a.mint < b.mint
	})

	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(3)))
	if err != nil {
		t.Fatal(err)
	}
	// blocks lays key-value pairs into blocks as an sstable does (shared prefix length, rest
	// length, value length, rest of key, value; full keys every 16) and returns their size
	// before and after zstd.
	blocks := func(kvs [][2][]byte) (raw, packed int) {
		var block, prevKey []byte
		n := 0
		flush := func() {
			if len(block) == 0 {
				return
			}
			raw += len(block)
			packed += len(enc.EncodeAll(block, nil))
			block, prevKey, n = block[:0], nil, 0
		}
		for _, kv := range kvs {
			k, v := kv[0], kv[1]
			shared := 0
			if n%16 != 0 {
				for shared < len(k) && shared < len(prevKey) && k[shared] == prevKey[shared] {
					shared++
				}
			}
			block = binary.AppendUvarint(block, uint64(shared))
			block = binary.AppendUvarint(block, uint64(len(k)-shared))
			block = binary.AppendUvarint(block, uint64(len(v)))
			block = append(block, k[shared:]...)
			block = append(block, v...)
			prevKey = append(prevKey[:0], k...)
			n++
			if len(block) >= dataBlockSize {
				flush()
			}
		}
		flush()
		return raw, packed
	}
	layouts := []struct {
		name   string
		encode func(b []byte, c *chunkBuilder, sc *decimalScratch) []byte
	}{
		{"xor2", func(b []byte, c *chunkBuilder, _ *decimalScratch) []byte { return encodeChunkValue(b, c) }},
		{"decimal 0xD1", encodeDecimalChunkValue},
		{"packed 0xD2", encodeStoredChunkValue},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "the day: %d series × %d samples, %d chunks of up to %d samples, %d B data blocks, zstd 3\n", series, samples, len(chunks), perChunk, dataBlockSize)
	for _, l := range layouts {
		var sc decimalScratch
		all := make([][2][]byte, 0, len(chunks))
		byMetric := map[string][][2][]byte{}
		var metrics []string
		var values int
		modes := map[string]int{}
		for _, cr := range chunks {
			k := chunkKey(nil, cr.part, cr.ref, cr.mint)
			v := l.encode(nil, cr.c, &sc)
			values += len(v)
			all = append(all, [2][]byte{k, v})
			if _, ok := byMetric[cr.metric]; !ok {
				metrics = append(metrics, cr.metric)
			}
			byMetric[cr.metric] = append(byMetric[cr.metric], [2][]byte{k, v})
			if v[0] == byte(encPacked) {
				_, w := binary.Uvarint(v[1:])
				_, w2 := binary.Uvarint(v[1+w:])
				m := v[1+w+w2+1]
				modes[fmt.Sprintf("mode %d regular %v", m&0xf, m&packedRegular != 0)]++
			}
		}
		raw, packed := blocks(all)
		total := float64(series * samples)
		fmt.Fprintf(&report, "%-13s values %.3f B/sample, blocks %.3f raw -> %.3f zstd B/sample (%.2f MB)\n",
			l.name, float64(values)/total, float64(raw)/total, float64(packed)/total, float64(packed)/1e6)
		if l.name == "packed 0xD2" {
			b.ReportMetric(float64(packed)/total, "zstd-B/sample")
		}
		for _, m := range metrics {
			kvs := byMetric[m]
			raw, packed := blocks(kvs)
			n := float64(len(kvs)) / float64(len(chunks)) * total
			fmt.Fprintf(&report, "    %-40s %5.1f %% of samples  %.3f raw -> %.3f zstd B/sample\n", m, 100*n/total, float64(raw)/n, float64(packed)/n)
		}
		if len(modes) > 0 {
			fmt.Fprintf(&report, "    chunk modes: %v\n", modes)
		}
	}
	t.Log("\n" + report.String())
}

// encodeDecimalChunkValue is what the stores before the packed layout wrote: the decimal layout
// (0xD1) where it applies, else the chunk's own encoding. Tests use it to write old stores.
func encodeDecimalChunkValue(b []byte, c *chunkBuilder, sc *decimalScratch) []byte {
	if chk := c.chunk(); isFloatChunk(chk) {
		start := len(b)
		b = append(b, byte(encDecimal))
		b = binary.AppendUvarint(b, uint64(c.maxt-c.mint))
		if out, ok := appendDecimalChunk(b, chk, sc); ok {
			return out
		}
		b = b[:start]
	}
	return encodeChunkValue(b, c)
}

// BenchmarkDayStoreBytes loads the same day into a real store in process (oldest first, 2,000
// samples a commit), closes, reopens and compacts it, and reports what its tables hold: the
// figure the server benchmark measures, taken apart (data blocks, index, bloom filters, chunk
// values). A measuring tool (about 15 s of CPU): go test -run '^$' -bench BenchmarkDayStoreBytes
// -benchtime 1x -v. It reports the tables' bytes per sample.
func BenchmarkDayStoreBytes(b *testing.B) {
	var t testing.TB = b
	const (
		series  = 2000
		samples = 24 * 3600 / 15
	)
	end := time.Date(2026, 12, 2, 11, 0, 0, 0, time.UTC).UnixMilli()
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	require.NoError(t, err)
	lsets := make([]labels.Labels, series)
	for id := range lsets {
		b := labels.NewScratchBuilder(6)
		for _, l := range loadgen.Labels(id) {
			b.Add(l.Name, l.Value)
		}
		lsets[id] = b.Labels()
	}
	refs := make([]storage.SeriesRef, series)
	for r := range samples {
		app := db.AppenderV2(context.Background())
		ts := end - int64(samples-1-r)*15_000
		for id, ls := range lsets {
			refs[id], err = app.Append(refs[id], ls, 0, ts, loadgen.Value(id, r), nil, nil, storage.AOptions{})
			require.NoError(t, err)
		}
		require.NoError(t, app.Commit())
	}
	require.NoError(t, db.Close())
	db, err = Open(dir, Options{})
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.pdb.Compact(context.Background(), []byte{0}, []byte{0xff}, false))

	total := float64(series * samples)
	tables, err := db.pdb.SSTables(pebble.WithProperties())
	require.NoError(t, err)
	var size, data, index, filter, entries, rawKeys, rawValues, blocks uint64
	for _, level := range tables {
		for _, tb := range level {
			size += tb.Size
			p := tb.Properties
			data, index, filter, entries = data+p.DataSize, index+p.IndexSize, filter+p.FilterSize, entries+p.NumEntries
			rawKeys, rawValues, blocks = rawKeys+p.RawKeySize, rawValues+p.RawValueSize, blocks+p.NumDataBlocks
		}
	}
	chunks := map[chunkenc.Encoding]int{}
	var chunkBytes int
	for _, p := range db.parts {
		require.NoError(t, db.scanChunks(db.pdb, p, func(_ uint64, c storedChunk) error {
			chunks[c.enc]++
			chunkBytes += len(c.data)
			return nil
		}))
	}
	b.ReportMetric(float64(size)/total, "disk-B/sample")
	t.Logf("the day in a store: tables %d B = %.3f B/sample: data blocks %.3f (%d blocks), index %.3f, filters %.3f; "+
		"%d entries, raw keys %.3f, raw values %.3f B/sample; chunks by encoding %v, chunk bodies %.3f B/sample",
		size, float64(size)/total, float64(data)/total, blocks, float64(index)/total, float64(filter)/total,
		entries, float64(rawKeys)/total, float64(rawValues)/total, chunks, float64(chunkBytes)/total)
}

// BenchmarkDayDecode decodes the closed chunks of two loadgen hosts' day (200 series, the mix
// of BenchmarkDayChunkBytes) in each layout, as a query reads them: ns per sample.
func BenchmarkDayDecode(b *testing.B) {
	const samples = 24 * 3600 / 15
	var builders []*chunkBuilder
	for id := range 200 {
		var c chunkBuilder
		emit := func(cb *chunkBuilder) { cp := *cb; builders = append(builders, &cp) }
		for r := range samples {
			if err := c.append(sample{t: 1_700_000_000_000 + int64(r)*15_000, f: loadgen.Value(id, r)}, 0, emit); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, layout := range []struct {
		name   string
		encode func([]byte, *chunkBuilder, *decimalScratch) []byte
	}{{"decimal", encodeDecimalChunkValue}, {"packed", encodeStoredChunkValue}} {
		b.Run(layout.name, func(b *testing.B) {
			var sc decimalScratch
			var stored []storedChunk
			n := 0
			for _, c := range builders {
				s, err := decodeChunkValue(c.mint, layout.encode(nil, c, &sc), true)
				if err != nil {
					b.Fatal(err)
				}
				stored = append(stored, s)
				n += int(c.floats)
			}
			var it chunkenc.Iterator
			b.ResetTimer()
			for range b.N {
				for _, s := range stored {
					var err error
					if it, err = s.iterator(it); err != nil {
						b.Fatal(err)
					}
					for it.Next() != chunkenc.ValNone {
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
	}
}
