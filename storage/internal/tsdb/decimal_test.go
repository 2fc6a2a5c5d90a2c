package tsdb

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

func xorChunk(t *testing.T, ts []int64, vs []float64, st int64) chunkenc.Chunk {
	t.Helper()
	chk := chunkenc.NewXOR2Chunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for i := range ts {
		app.Append(st, ts[i], vs[i])
	}
	return chk
}

// decodeAll reads a decimal chunk value body back through the iterator the querier uses.
func decodeAll(t *testing.T, mint int64, body []byte) ([]int64, []float64) {
	t.Helper()
	c := storedChunk{mint: mint, enc: encDecimal, data: body}
	it, err := c.iterator(nil)
	require.NoError(t, err)
	var ts []int64
	var vs []float64
	for it.Next() == chunkenc.ValFloat {
		tt, v := it.At()
		ts, vs = append(ts, tt), append(vs, v)
	}
	require.NoError(t, it.Err())
	return ts, vs
}

// Decimal chunks give back every timestamp and every value bit for bit, over the shapes of data
// scrapes produce and a random mix.
func TestDecimalChunkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	gen := map[string]func(i int) float64{
		"counter":           func(i int) float64 { return float64(1000 + 7*i) },
		"gauge 2 digits":    func(i int) float64 { return float64(rng.IntN(100000)-50000) / 100 },
		"mixed exponent":    func(i int) float64 { return []float64{1, 0.5, 0.125, 3.3, 1e-6, 12345678.9}[i%6] },
		"mantissa overflow": func(i int) float64 { return []float64{1e-9, 12345678.9}[i%2] },
		"large integers":    func(i int) float64 { return 1.7e15 + float64(i) },
		"big round":         func(i int) float64 { return float64(i) * 1e20 },
		"zeros":             func(i int) float64 { return 0 },
		"ratios":            func(i int) float64 { return float64(i) / 3 }, // not short decimals
	}
	for name, f := range gen {
		t.Run(name, func(t *testing.T) {
			var ts []int64
			var vs []float64
			tt := int64(1_700_000_000_000)
			for i := range 120 {
				tt += 15_000 + int64(rng.IntN(3)-1)*rng.Int64N(50)
				ts, vs = append(ts, tt), append(vs, f(i))
			}
			var sc decimalScratch
			body, ok := appendDecimalChunk(nil, xorChunk(t, ts, vs, 0), &sc)
			if name == "ratios" || name == "big round" || name == "mantissa overflow" {
				require.False(t, ok, "values without a short decimal form keep XOR")
				return
			}
			require.True(t, ok)
			gotT, gotV := decodeAll(t, ts[0], body)
			require.Equal(t, ts, gotT)
			require.Len(t, gotV, len(vs))
			for i := range vs {
				require.Equal(t, math.Float64bits(vs[i]), math.Float64bits(gotV[i]), "sample %d: %v vs %v", i, vs[i], gotV[i])
			}
			xorLen := len(xorChunk(t, ts, vs, 0).Bytes())
			t.Logf("%s: decimal %d bytes, XOR %d bytes", name, len(body), xorLen)
		})
	}
}

// Values that the decimal layout cannot give back exactly, and start timestamps, keep XOR.
func TestDecimalChunkRefuses(t *testing.T) {
	ts := []int64{1, 2, 3}
	for name, v := range map[string]float64{
		"stale marker":  math.Float64frombits(value.StaleNaN),
		"NaN":           math.NaN(),
		"+Inf":          math.Inf(1),
		"negative zero": math.Copysign(0, -1),
		"tiny":          1e-300,
		"huge":          1e300,
	} {
		var sc decimalScratch
		_, ok := appendDecimalChunk(nil, xorChunk(t, ts, []float64{1, v, 2}, 0), &sc)
		require.False(t, ok, name)
	}
	var sc decimalScratch
	_, ok := appendDecimalChunk(nil, xorChunk(t, ts, []float64{1, 2, 3}, 1), &sc)
	require.False(t, ok, "start timestamps")
}

// Seek follows chunkenc.Iterator's contract: it never moves backwards, and stays put when the
// current sample already qualifies.
func TestDecimalIteratorSeek(t *testing.T) {
	ts := []int64{10, 20, 30, 40}
	var sc decimalScratch
	body, ok := appendDecimalChunk(nil, xorChunk(t, ts, []float64{1, 2, 3, 4}, 0), &sc)
	require.True(t, ok)
	requireSeekContract(t, storedChunk{mint: 10, enc: encDecimal, data: body})
}

// requireSeekContract checks chunkenc.Iterator's Seek on c, a chunk of samples at 10, 20, 30
// and 40: it stops at the first sample at or after t, never moves backwards, and is done past
// the end.
func requireSeekContract(t *testing.T, c storedChunk) {
	t.Helper()
	it, err := c.iterator(nil)
	require.NoError(t, err)
	require.Equal(t, chunkenc.ValFloat, it.Seek(15))
	require.Equal(t, int64(20), it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(5))
	require.Equal(t, int64(20), it.AtT(), "no move backwards")
	require.Equal(t, chunkenc.ValFloat, it.Next())
	require.Equal(t, int64(30), it.AtT())
	require.Equal(t, chunkenc.ValNone, it.Seek(41))
	require.Equal(t, chunkenc.ValNone, it.Next())
}

// A corrupt body is an error of the iterator, not a panic.
func TestDecimalCorrupt(t *testing.T) {
	var sc decimalScratch
	body, ok := appendDecimalChunk(nil, xorChunk(t, []int64{1, 2, 3}, []float64{1, 2, 3}, 0), &sc)
	require.True(t, ok)
	for cut := range len(body) {
		it, err := storedChunk{mint: 1, enc: encDecimal, data: body[:cut]}.iterator(nil)
		require.NoError(t, err)
		for it.Next() != chunkenc.ValNone {
		}
		require.Error(t, it.Err(), "cut at %d", cut)
	}
}

// Bytes that are not a decimal chunk (a varint longer than 64 bits, random bodies) are an error or
// some samples, never a panic or an endless read.
func TestDecimalGarbage(t *testing.T) {
	long := []byte{2, 0, 0} // two samples, exponent 0, mode 0, then a timestamp varint of 11 bytes
	long = append(long, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 2, 2)
	it, err := storedChunk{mint: 1, enc: encDecimal, data: long}.iterator(nil)
	require.NoError(t, err)
	require.Equal(t, chunkenc.ValNone, it.Next())
	require.Error(t, it.Err())

	rng := rand.New(rand.NewPCG(3, 4))
	for range 20_000 {
		body := make([]byte, rng.IntN(40))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		it, err := storedChunk{mint: 1, enc: encDecimal, data: body}.iterator(it)
		require.NoError(t, err)
		for it.Next() != chunkenc.ValNone {
		}
	}
}

// A series whose newest stored chunk is decimal (cut, then the DB reopened) appends on: the head
// is reopened as XOR with the same samples, and the result reads back whole.
func TestDecimalChunkReopenedAsHead(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: 24 * 3600 * 1000 * 1e6})
	ls := lbls("__name__", "m")
	var want []smp
	for i := range 120 {
		want = append(want, smp{T: int64(i) * 1000, F: float64(i) / 4})
	}
	mustAppend(t, db, ls, want...)
	// One more sample cuts the 120 into a stored (decimal) chunk.
	want = append(want, smp{T: 120_000, F: 0.5})
	mustAppend(t, db, ls, want[120:]...)
	db = reopen(t, db, fs)
	requireSamples(t, want, selectStrict(t, db, 0, 1<<40, nil, eq("__name__", "m"))[ls.String()])
	decimals := 0
	require.NoError(t, db.scanChunks(db.pdb, 0, func(_ uint64, c storedChunk) error {
		if c.enc == encPacked {
			decimals++
		}
		return nil
	}))
	// The cut chunk and the one-sample head that the close's checkpoint wrote: the appends
	// below reopen a decimal head.
	require.Equal(t, 2, decimals, "the cut chunk and the checkpointed head are stored packed")
	more := smp{T: 121_000, F: 0.75}
	mustAppend(t, db, ls, more)
	want = append(want, more)
	db = reopen(t, db, fs)
	requireSamples(t, want, selectStrict(t, db, 0, 1<<40, nil, eq("__name__", "m"))[ls.String()])
}

// A head reopened from its stored copy after a restart is cut at 120 samples in all, not 120
// more.
func TestReopenedHeadCutsAt120(t *testing.T) {
	db, fs := openMem(t, Options{})
	ls := lbls("__name__", "m")
	var all []smp
	for i := range 160 {
		all = append(all, smp{T: int64(i) * 1000, F: float64(i)})
	}
	mustAppend(t, db, ls, all[:100]...)
	db = reopen(t, db, fs)
	mustAppend(t, db, ls, all[100:]...)
	db = reopen(t, db, fs)
	var sizes []int
	for _, p := range db.parts {
		require.NoError(t, db.scanChunks(db.pdb, p, func(_ uint64, c storedChunk) error {
			got, err := c.samples(nil)
			sizes = append(sizes, len(got))
			return err
		}))
	}
	require.Equal(t, []int{120, 40}, sizes)
	requireSamples(t, all, selectStrict(t, db, 0, 1<<40, nil, eq("__name__", "m"))[ls.String()])
}
