package tsdb

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/metricstor/metricstor/testbed/loadgen"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestStreamChunkRoundTrip appends values of every kind the layout takes (terms of every width,
// growing exponents, extreme timestamps) and checks every prefix reads back bit for bit.
func TestStreamChunkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func(i int) (int64, float64){
		"regular counter": func(i int) (int64, float64) { return int64(i) * 15000, float64(1000 + 7*i) },
		"jittered decimals": func(i int) (int64, float64) {
			return int64(i)*15000 + rng.Int64N(50) - 25, math.Round(rng.Float64()*1e4) / 100
		},
		"exponent grows": func(i int) (int64, float64) {
			return int64(i) * 1000, []float64{1, 2.5, 3.25, 1e6, 0.125, 42, 1e-3}[i%7]
		},
		"wide terms": func(i int) (int64, float64) {
			return int64(i) * int64(1+rng.IntN(1<<30)), float64(rng.Int64N(1<<52) - 1<<51)
		},
		"extreme timestamps": func(i int) (int64, float64) {
			return []int64{math.MinInt64, -1, 0, math.MaxInt64 - 5, 3}[i%5] + int64(i), float64(i % 3)
		},
		"constant": func(int) (int64, float64) { return 5, 0 },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			var c streamChunk
			var ts []int64
			var vs []float64
			for i := range 300 {
				tt, v := gen(i)
				require.True(t, c.appendFloat(tt, v), "sample %d (%v)", i, v)
				ts, vs = append(ts, tt), append(vs, v)
				if i%37 == 0 || i == 299 {
					checkStream(t, c.Bytes(), ts, vs)
				}
			}
			require.Equal(t, 300, c.NumSamples())
			// Reset rebuilds the appender's state from the bytes: appending goes on the same.
			var r streamChunk
			r.Reset(append([]byte(nil), c.Bytes()...))
			require.Equal(t, c.Bytes(), r.Bytes())
			tt, v := gen(300)
			require.Equal(t, c.appendFloat(tt, v), r.appendFloat(tt, v))
			require.Equal(t, c.Bytes(), r.Bytes())
		})
	}
}

func checkStream(t *testing.T, b []byte, ts []int64, vs []float64) {
	t.Helper()
	var it decimalIterator
	it.reset(encStream, 0, append([]byte(nil), b...))
	require.NoError(t, it.err)
	require.Equal(t, ts, it.ts)
	require.Len(t, it.vs, len(vs))
	for i := range vs {
		require.Equal(t, math.Float64bits(vs[i]), math.Float64bits(it.vs[i]), "value %d", i)
	}
}

// TestStreamChunkRefuses checks that what the layout cannot give back is refused and leaves the
// chunk as it was, and that chunkBuilder then goes on in XOR2 with every sample.
func TestStreamChunkRefuses(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Float64frombits(0x7ff0000000000002), math.Inf(1), math.Copysign(0, -1), 1.0 / 3, 1 << 60} {
		var c streamChunk
		require.True(t, c.appendFloat(1, 1.5))
		before := append([]byte(nil), c.Bytes()...)
		require.False(t, c.appendFloat(2, v), "%v", v)
		require.Equal(t, before, c.Bytes())

		var b chunkBuilder
		emit := func(*chunkBuilder) { t.Fatal("no chunk is cut") }
		require.NoError(t, b.append(sample{t: 1, f: 1.5}, 0, emit))
		require.Equal(t, encStream, b.chunk().Encoding())
		require.NoError(t, b.append(sample{t: 2, f: v}, 0, emit))
		require.NoError(t, b.append(sample{t: 3, f: 2}, 0, emit))
		require.Equal(t, chunkenc.EncXOR2, b.chunk().Encoding())
		it := b.chunk().Iterator(nil)
		var got []float64
		for it.Next() == chunkenc.ValFloat {
			_, x := it.At()
			got = append(got, x)
		}
		require.Len(t, got, 3)
		require.Equal(t, math.Float64bits(v), math.Float64bits(got[1]))
		require.Equal(t, int32(3), b.floats)
	}
	// A start timestamp goes to XOR2 too.
	var b chunkBuilder
	require.NoError(t, b.append(sample{t: 1, f: 1}, 0, nil))
	require.NoError(t, b.append(sample{st: 1, t: 2, f: 1}, 0, nil))
	require.Equal(t, chunkenc.EncXOR2, b.chunk().Encoding())
}

// TestStreamChunkCorrupt feeds truncated and garbled bytes to the reader: an error, never a
// panic.
func TestStreamChunkCorrupt(t *testing.T) {
	var c streamChunk
	for i := range 50 {
		require.True(t, c.appendFloat(int64(i)*15000, float64(i*i)/4))
	}
	b := c.Bytes()
	for n := range len(b) - 1 {
		var it decimalIterator
		it.reset(encStream, 0, b[:n])
		require.Error(t, it.err, "%d bytes of %d", n, len(b))
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		g := append([]byte(nil), b...)
		g[rng.IntN(len(g))] ^= byte(1 + rng.IntN(255))
		var it decimalIterator
		it.reset(encStream, 0, g) // must not panic
	}
}

// TestStreamHeadStartsWithOtherValues: a head whose first sample does not fit starts in XOR2.
func TestStreamHeadStartsWithOtherValues(t *testing.T) {
	var b chunkBuilder
	require.NoError(t, b.append(sample{t: 1, f: math.NaN()}, 0, nil))
	require.NoError(t, b.append(sample{t: 2, f: 2}, 0, nil))
	require.Equal(t, chunkenc.EncXOR2, b.chunk().Encoding())
	require.Equal(t, 2, b.chunk().NumSamples())
}

// A head is one object of 64 bytes (a size class of its own): at 100k series every 16 bytes
// more is 1.6 MB of heap.
func TestStreamChunkSize(t *testing.T) {
	require.Equal(t, uintptr(64), unsafe.Sizeof(streamChunk{}))
}

// Heads are most of the store's memory, and a head's bytes are held for up to 120 samples: the
// room allocated beyond them must stay small at every length. Doubling, as append grows a small
// slice, held 47 % more than used at 100 loadgen samples (260 bytes for 177).
func TestStreamChunkRoom(t *testing.T) {
	for _, n := range []int{30, 60, 100, 120} {
		var used, held int
		for id := range 2000 {
			var c streamChunk
			for r := range n {
				require.True(t, c.appendFloat(1_700_000_000_000+int64(r)*15_000, loadgen.Value(id, r)))
			}
			used += len(c.b)
			held += cap(c.b)
		}
		require.LessOrEqual(t, float64(held), 1.25*float64(used), "%d samples: %d bytes held for %d used", n, held, used)
	}
}

// Packing a stream head reads its mantissas directly; the packed chunk must be the one packing
// the same samples from XOR2 gives, byte for byte.
func TestStreamChunkPacksAsXOR2(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 50 {
		var sc streamChunk
		xor := chunkenc.NewXOR2Chunk()
		app, err := xor.Appender()
		require.NoError(t, err)
		for i := range 120 {
			v := math.Round(rng.Float64()*1e6) / []float64{1, 10, 100, 1000}[(i+round)%4]
			if round%3 == 0 {
				v = float64(1000 + 17*i + rng.IntN(5))
			}
			ts := int64(i)*15000 + rng.Int64N(3)
			require.True(t, sc.appendFloat(ts, v))
			app.Append(0, ts, v)
		}
		var s1, s2 decimalScratch
		a, ok1 := appendPackedChunk(nil, &sc, &s1)
		b, ok2 := appendPackedChunk(nil, xor, &s2)
		require.True(t, ok1)
		require.True(t, ok2)
		require.Equal(t, b, a, "round %d", round)
	}
}

// BenchmarkStreamChunk: appending 120 node-exporter-like samples to a head, decoding them, and
// packing the head as a cut does, against the same in XOR2 (ns/op is per sample).
//
//	go test -run '^$' -bench BenchmarkStreamChunk ./storage/internal/tsdb/
func BenchmarkStreamChunk(b *testing.B) {
	const n = 120
	var ts [n]int64
	var vs [n]float64
	rng := rand.New(rand.NewPCG(7, 8))
	base := 1e5 * rng.Float64()
	for i := range n {
		ts[i] = int64(i) * 15000
		vs[i] = math.Round((base+3.7*float64(i)+rng.Float64())*100) / 100 // a CPU-seconds counter
	}
	stream := func() chunkenc.Chunk {
		var c streamChunk
		for i := range n {
			c.appendFloat(ts[i], vs[i])
		}
		return &c
	}
	xor := func() chunkenc.Chunk {
		c := chunkenc.NewXOR2Chunk()
		app, _ := c.Appender()
		for i := range n {
			app.Append(0, ts[i], vs[i])
		}
		return c
	}
	for _, enc := range []struct {
		name string
		make func() chunkenc.Chunk
	}{{"stream", stream}, {"xor2", xor}} {
		b.Run(enc.name+"/append", func(b *testing.B) {
			for b.Loop() {
				enc.make()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
			b.ReportMetric(float64(len(enc.make().Bytes()))/n, "bytes/sample")
		})
		b.Run(enc.name+"/decode", func(b *testing.B) {
			c := enc.make()
			var it chunkenc.Iterator
			for b.Loop() {
				it = c.Iterator(it)
				for it.Next() != chunkenc.ValNone {
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
		b.Run(enc.name+"/pack", func(b *testing.B) {
			c := enc.make()
			var sc decimalScratch
			var buf []byte
			for b.Loop() {
				buf, _ = appendPackedChunk(buf[:0], c, &sc)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
		})
	}
}
