package tsdb

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// packedBody encodes ts, vs in the packed layout (the body after encoding byte and maxt-mint)
// straight from the samples, the XOR chunk the head would hold in between.
func packedBody(t testing.TB, ts []int64, vs []float64) ([]byte, bool) {
	t.Helper()
	chk := chunkenc.NewXOR2Chunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	var sc decimalScratch
	return appendPackedChunk(nil, chk, &sc)
}

// packedModes returns the value mode and whether the timestamps were found regular.
func packedModes(body []byte) (byte, bool) {
	_, w := binary.Uvarint(body)
	m := body[w+1]
	return m &^ packedRegular, m&packedRegular != 0
}

// requirePackedRoundTrip encodes, decodes through the querier's iterator and compares bit for
// bit; it returns the body, nil when the layout declined the values.
func requirePackedRoundTrip(t testing.TB, ts []int64, vs []float64) []byte {
	t.Helper()
	body, ok := packedBody(t, ts, vs)
	var sc decimalScratch
	_, decOK := appendDecimalChunk(nil, xorChunkOf(t, ts, vs), &sc)
	require.Equal(t, decOK, ok, "the packed layout takes exactly what the decimal layout takes")
	if !ok {
		return nil
	}
	it, err := storedChunk{mint: ts[0], enc: encPacked, data: body}.iterator(nil)
	require.NoError(t, err)
	i := 0
	for it.Next() == chunkenc.ValFloat {
		tt, v := it.At()
		require.Less(t, i, len(ts), "more samples than written")
		require.Equal(t, ts[i], tt, "timestamp %d", i)
		require.Equal(t, math.Float64bits(vs[i]), math.Float64bits(v), "sample %d: %v, want %v", i, v, vs[i])
		i++
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(ts), i)
	return body
}

func xorChunkOf(t testing.TB, ts []int64, vs []float64) chunkenc.Chunk {
	chk := chunkenc.NewXOR2Chunk()
	app, err := chk.Appender()
	require.NoError(t, err)
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return chk
}

func regularTimes(n int) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = 1_700_000_000_000 + int64(i)*15_000
	}
	return ts
}

// The shapes of scraped data round-trip bit for bit, each in the mode meant for it, and what
// the layout saves over the decimal one shows.
func TestPackedChunkRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	jitterTimes := func(n int) []int64 {
		ts := regularTimes(n)
		for i := 1; i < n; i++ {
			ts[i] = ts[i-1] + 15_000 + rng.Int64N(40) - 20
		}
		return ts
	}
	for _, tc := range []struct {
		name    string
		value   func(i int) float64
		ts      func(n int) []int64
		mode    byte
		regular bool
	}{
		{"counter with jitter", func(i int) float64 { return float64(1_000_000 + 5000*i + rng.IntN(2500)) }, regularTimes, 2, true},
		{"decimal counter", func(i int) float64 { return math.Round((1e5+3.7*float64(i)+rng.Float64())*100) / 100 }, regularTimes, 2, true},
		{"falling line", func(i int) float64 { return float64(-7*i + rng.IntN(3)) }, regularTimes, 2, true},
		{"constant rate", func(i int) float64 { return float64(100 + 3*i) }, regularTimes, 3, true},
		{"constant", func(int) float64 { return 1500 }, regularTimes, 3, true},
		{"fractional rate", func(i int) float64 { return float64(floorDiv(int64(7*i), 3)) / 10 }, regularTimes, 2, true},
		{"small gauge", func(int) float64 { return float64(rng.IntN(4)) }, regularTimes, 2, true},
		{"wandering gauge", func(i int) float64 {
			return math.Round((40+5*math.Sin(float64(i)/10)+rng.Float64())*100) / 100
		}, jitterTimes, 3, false},
		{"rare steps", func(i int) float64 { return float64(4096 * (1e8 + int64(i/20)*int64(rng.IntN(1e6)))) }, regularTimes, 0, true},
		{"negative and mixed exponents", func(i int) float64 { return []float64{-1, 0.5, -0.125, 3.3, 1e-6, 0}[i%6] }, jitterTimes, 2, false},
		{"mantissas near 2^53", func(i int) float64 { return float64(1<<53 - 1 - int64(rng.IntN(1<<40))) }, regularTimes, 2, true},
		{"wide jitter", func(i int) float64 { return float64(int64(i)<<46 + rng.Int64N(1<<47)) }, regularTimes, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts(samplesPerChunk)
			vs := make([]float64, len(ts))
			for i := range vs {
				vs[i] = tc.value(i)
			}
			body := requirePackedRoundTrip(t, ts, vs)
			require.NotNil(t, body)
			mode, regular := packedModes(body)
			require.Equal(t, tc.mode, mode, "value mode")
			require.Equal(t, tc.regular, regular, "regular timestamps")
			var sc decimalScratch
			dec, _ := appendDecimalChunk(nil, xorChunkOf(t, ts, vs), &sc)
			t.Logf("%s: packed %d bytes (mode %d), decimal %d bytes", tc.name, len(body), mode, len(dec))
		})
	}
}

// Chunks of one and two samples, and the longest a reader accepts.
func TestPackedChunkSizes(t *testing.T) {
	for _, n := range []int{1, 2, 3, maxPackedSamples} {
		ts := regularTimes(n)
		vs := make([]float64, n)
		for i := range vs {
			vs[i] = float64(i * i % 17)
		}
		require.NotNil(t, requirePackedRoundTrip(t, ts, vs), "n=%d", n)
	}
	ts := regularTimes(maxPackedSamples + 1)
	_, ok := packedBody(t, ts, make([]float64, len(ts)))
	require.False(t, ok, "more samples than a reader accepts")
}

// A property test over random chunks of every shape and width: whatever the decimal layout
// takes, the packed layout gives back bit for bit.
func TestPackedChunkRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	modes := map[byte]int{}
	for round := range 3000 {
		n := 1 + rng.IntN(samplesPerChunk)
		ts := make([]int64, n)
		ts[0] = rng.Int64N(1<<42) - 1<<41
		step := 1 + rng.Int64N(60_000)
		irregular := rng.IntN(3) == 0
		for i := 1; i < n; i++ {
			ts[i] = ts[i-1] + step
			if irregular {
				ts[i] += rng.Int64N(step)
			}
		}
		exp := rng.IntN(6)
		base := rng.Int64N(1<<uint(1+rng.IntN(53))) - 1<<uint(rng.IntN(52))
		slope := rng.Int64N(1<<uint(1+rng.IntN(40))) - 1<<uint(rng.IntN(39))
		jitter := int64(1) << uint(rng.IntN(50))
		kind := rng.IntN(6)
		if kind == 5 { // a steep line over many points: wide spans that a line still packs
			n = maxPackedSamples - rng.IntN(100)
			slope = 1<<39 + rng.Int64N(1<<40)
			base = -(maxMantissa - 1)
		}
		vs := make([]float64, n)
		m := base
		for i := range vs {
			switch kind {
			case 0: // line with jitter
				m = base + slope*int64(i) + rng.Int64N(jitter)
			case 1: // random walk
				m += rng.Int64N(jitter) - jitter/2
			case 2: // steps
				if rng.IntN(20) == 0 {
					m += rng.Int64N(jitter)
				}
			case 3: // anything
				m = rng.Int64N(1<<53) - 1<<52
			default: // a float that may not be a short decimal
				vs[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(10)))
				continue
			}
			vs[i] = float64(m) / pow10[exp]
		}
		var body []byte
		require.NotPanics(t, func() { body = requirePackedRoundTrip(t, ts, vs) }, "round %d", round)
		if body != nil {
			mode, _ := packedModes(body)
			modes[mode]++
		}
	}
	t.Logf("chunks by value mode: %v", modes)
	for mode := range byte(4) {
		require.NotZero(t, modes[mode], "no chunk took mode %d: the test misses it", mode)
	}
}

// FuzzPackedChunk reads the fuzzer's bytes as timestamp steps and float64 values; whatever is
// encoded must decode bit for bit. `go test` runs the seeds; `go test -fuzz FuzzPackedChunk`
// searches.
func FuzzPackedChunk(f *testing.F) {
	seed := func(steps []uint16, vs []float64) []byte {
		var b []byte
		for i := range vs {
			b = binary.LittleEndian.AppendUint16(b, steps[i%len(steps)])
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(vs[i]))
		}
		return b
	}
	f.Add(seed([]uint16{15000}, []float64{1, 2, 3, 4.5, 6}))
	f.Add(seed([]uint16{1, 2, 3}, []float64{0, -0.25, 1e15, -1e15, 0.001}))
	f.Add(seed([]uint16{100}, []float64{9007199254740991, -9007199254740991, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ts []int64
		var vs []float64
		tt := int64(0)
		for len(data) >= 10 && len(ts) < 300 {
			tt += 1 + int64(binary.LittleEndian.Uint16(data))
			v := math.Float64frombits(binary.LittleEndian.Uint64(data[2:]))
			ts, vs = append(ts, tt), append(vs, v)
			data = data[10:]
		}
		if len(ts) == 0 {
			return
		}
		requirePackedRoundTrip(t, ts, vs)
	})
}

// Every cut of a packed chunk, and a byte too many, is an error of the iterator, in every mode.
func TestPackedCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	ts := regularTimes(50)
	irregular := append([]int64(nil), ts...)
	irregular[7] += 3
	for name, c := range map[string]struct {
		ts []int64
		v  func(i int) float64
	}{
		"mode 0":    {ts, func(i int) float64 { return float64(int64(i/20) << 40) }},
		"mode 2":    {ts, func(i int) float64 { return float64(1000*i + rng.IntN(999)) }},
		"mode 3":    {irregular, func(i int) float64 { return 40 + 5*math.Sin(float64(i)/3) + float64(rng.IntN(3)) }},
		"constant":  {ts, func(int) float64 { return 1 }},
		"on a line": {ts, func(i int) float64 { return float64(floorDiv(int64(7*i), 3)) }},
		"two zeros": {ts[:2], func(int) float64 { return 0 }},
	} {
		vs := make([]float64, len(c.ts))
		for i := range vs {
			vs[i] = math.Round(c.v(i)*100) / 100
		}
		body := requirePackedRoundTrip(t, c.ts, vs)
		require.NotNil(t, body, name)
		check := func(data []byte, what string) {
			it, err := storedChunk{mint: c.ts[0], enc: encPacked, data: data}.iterator(nil)
			require.NoError(t, err)
			for it.Next() != chunkenc.ValNone {
			}
			require.Error(t, it.Err(), "%s: %s", name, what)
		}
		for cut := range len(body) {
			check(body[:cut], "cut")
		}
		check(append(append([]byte(nil), body...), 0), "a byte too many")
	}
}

// Random bodies are an error or some samples, never a panic, an endless read or a huge
// allocation.
func TestPackedGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var it chunkenc.Iterator
	for range 50_000 {
		body := make([]byte, rng.IntN(40))
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
		if len(body) > 2 && rng.IntN(2) == 0 {
			body[0] = byte(rng.IntN(130)) // plausible sample counts
			body[1] = byte(rng.IntN(16))
			body[2] = byte(rng.IntN(4)) | byte(rng.IntN(2))<<4
		}
		var err error
		it, err = storedChunk{mint: 1, enc: encPacked, data: body}.iterator(it)
		require.NoError(t, err)
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		require.LessOrEqual(t, n, maxPackedSamples)
	}
}

// Seek keeps chunkenc.Iterator's contract on packed chunks as on decimal ones.
func TestPackedIteratorSeek(t *testing.T) {
	ts := []int64{10, 20, 30, 40}
	body, ok := packedBody(t, ts, []float64{1, 2, 3, 4})
	require.True(t, ok)
	requireSeekContract(t, storedChunk{mint: 10, enc: encPacked, data: body})
}

// A store written by the version before the packed layout (decimal chunks, 0xD1) opens and
// answers the same; appending to it reopens its decimal head, and new chunks are packed beside
// the old decimal ones, all read back whole after another restart.
func TestDecimalStoreOfOlderVersionReadsBack(t *testing.T) {
	db, fs := openMem(t, Options{noMerge: true}) // merging would rewrite the old chunks
	db.encodeStored = encodeDecimalChunkValue    // the previous version's writer
	rng := rand.New(rand.NewPCG(9, 9))
	series := map[string]func(i int) float64{
		"counter": func(i int) float64 { return float64(1e6 + 4000*i + rng.IntN(2000)) },
		"gauge":   func(i int) float64 { return math.Round((40+5*math.Sin(float64(i)/10)+rng.Float64())*100) / 100 },
		"const":   func(int) float64 { return 1 },
	}
	want := map[string][]smp{}
	add := func(db *DB, from, to int) {
		for name, f := range series {
			ls := lbls("__name__", name)
			var s []smp
			for i := from; i < to; i++ {
				s = append(s, smp{T: int64(i) * 15_000, F: f(i)})
			}
			mustAppend(t, db, ls, s...)
			want[ls.String()] = append(want[ls.String()], s...)
		}
	}
	count := func(db *DB) map[chunkenc.Encoding]int { return countEncodings(t, db) }
	all := func(db *DB) map[string][]smp {
		return selectStrict(t, db, 0, 1<<40, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	}
	add(db, 0, 300)
	db = reopen(t, db, fs) // the new version opens the old store
	require.Equal(t, map[chunkenc.Encoding]int{encDecimal: 9}, count(db), "the old store: 3 series × (2 cut + 1 checkpointed head) decimal chunks")
	requireSameSeries(t, want, all(db))

	add(db, 300, 700)
	db = reopen(t, db, fs)
	n := count(db)
	require.Equal(t, 6, n[encDecimal], "the old cut chunks stay; the old heads were rewritten")
	require.Equal(t, 12, n[encPacked], "3 series × (3 cut + 1 checkpointed head)")
	requireSameSeries(t, want, all(db))
}

// lineWalk's steps are floor(num*i/den), negative slopes included.
func TestLineWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for range 2000 {
		num := rng.Int64N(1<<40) - 1<<39
		den := 1 + rng.Int64N(200)
		l := newLineWalk(num, den)
		for i := range int64(130) {
			require.Equal(t, floorDiv(num*i, den), l.next(), "num %d den %d i %d", num, den, i)
		}
	}
	require.Equal(t, int64(-2), floorDiv(-7, 4))
	require.Equal(t, int64(1), floorDiv(7, 4))
	require.Equal(t, int64(-2), floorDiv(7, -4))
}

// FuzzPackedDecode feeds the reader arbitrary bodies: an error or at most maxPackedSamples
// samples, never a panic. The seeds are chunks of every mode.
func FuzzPackedDecode(f *testing.F) {
	ts := regularTimes(30)
	for _, vs := range [][]float64{
		{1, 2, 3}, {0, 0}, {1.5},
	} {
		body, _ := packedBody(f, ts[:len(vs)], vs)
		f.Add(body)
	}
	for _, gen := range []func(i int) float64{
		func(i int) float64 { return float64(1000*i + i*i%7) },            // line
		func(i int) float64 { return 40 + float64(i%5)/4 },                // deltas or line
		func(i int) float64 { return float64(int64(i/10) << 40) },         // varints
		func(i int) float64 { return float64(i) * 0.01 * float64(1+i%3) }, // anything
	} {
		vs := make([]float64, len(ts))
		for i := range vs {
			vs[i] = gen(i)
		}
		body, ok := packedBody(f, ts, vs)
		if ok {
			f.Add(body)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		it, err := storedChunk{mint: 1, enc: encPacked, data: body}.iterator(nil)
		require.NoError(t, err)
		n := 0
		for it.Next() != chunkenc.ValNone {
			n++
		}
		require.LessOrEqual(t, n, maxPackedSamples)
	})
}

// countEncodings counts the stored chunks of every partition by encoding.
func countEncodings(t testing.TB, db *DB) map[chunkenc.Encoding]int {
	t.Helper()
	n := map[chunkenc.Encoding]int{}
	for _, p := range db.parts {
		require.NoError(t, db.scanChunks(db.pdb, p, func(_ uint64, c storedChunk) error {
			n[c.enc]++
			return nil
		}))
	}
	return n
}

// A periodic checkpoint stores the open float heads as their own bytes (the stream layout of
// stream.go), without packing them
// under the write lock; the copies that stay are packed where they stay: at a clean close
// (heads that gained samples since and heads that did not) and when head collection forgets a
// series. A crash reopens the quick copies, with the same samples.
func TestQuickCheckpointHeadsPackedWhereTheyStay(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openOn(t, fs, Options{noMerge: true})
	headEnc := encStream
	series := map[string]func(i int) float64{
		"counter": func(i int) float64 { return float64(1000 + 7*i) },
		"gauge":   func(i int) float64 { return float64(4000+i%13) / 100 },
	}
	want := map[string][]smp{}
	add := func(db *DB, name string, from, to int) {
		ls := lbls("__name__", name)
		var s []smp
		for i := from; i < to; i++ {
			s = append(s, smp{T: int64(i) * 15_000, F: series[name](i)})
		}
		mustAppend(t, db, ls, s...)
		want[ls.String()] = append(want[ls.String()], s...)
	}
	check := func(db *DB, wantEnc map[chunkenc.Encoding]int, msg string) {
		t.Helper()
		require.Equal(t, wantEnc, countEncodings(t, db), msg)
		requireSameSeries(t, want, selectStrict(t, db, 0, 1<<40, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")), msg)
	}
	quickCheckpoint := func(db *DB) {
		db.writeMu.Lock()
		defer db.writeMu.Unlock()
		require.NoError(t, db.checkpointLocked(headsQuick))
	}

	add(db, "counter", 0, 50)
	add(db, "gauge", 0, 50)
	quickCheckpoint(db)
	check(db, map[chunkenc.Encoding]int{headEnc: 2}, "a periodic checkpoint stores the heads' own bytes")

	// A crash: the store reopens on the quick copies (the checkpoint synced them).
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 0, RNG: rand.New(rand.NewPCG(1, 1))})
	db = openOn(t, crashed, db.opts)
	check(db, map[chunkenc.Encoding]int{headEnc: 2}, "after the crash")
	add(db, "counter", 50, 60)
	db = reopen(t, db, crashed)
	check(db, map[chunkenc.Encoding]int{encPacked: 1, headEnc: 1},
		"the close packs the counter's head, appended to since the crash; the gauge's was not reopened since")

	// Heads that gained nothing since a quick checkpoint are packed at the close too.
	add(db, "counter", 60, 70)
	add(db, "gauge", 50, 70)
	quickCheckpoint(db)
	check(db, map[chunkenc.Encoding]int{headEnc: 2}, "quick copies of both heads")
	db = reopen(t, db, crashed)
	check(db, map[chunkenc.Encoding]int{encPacked: 2}, "both packed at the close")

	// Head collection packs the head of a series it forgets. The counter goes on for 100
	// minutes (its cut chunks are packed as they are cut), the gauge stops at 17.5.
	add(db, "gauge", 70, 71)
	add(db, "counter", 70, 400)
	quickCheckpoint(db)
	db.collectHead()
	require.EqualValues(t, 1, db.Stats().HeadSeriesCollected.Load())
	n := countEncodings(t, db)
	require.Equal(t, 1, n[headEnc], "only the counter's open head is a quick copy: %v", n)
	check(db, n, "after the collection")
	db = reopen(t, db, crashed)
	check(db, map[chunkenc.Encoding]int{encPacked: n[encPacked] + 1}, "all packed after the close")
}

// TestBestLineByHull: bestLine's measure of a candidate line on the hulls' vertices alone gives
// the plan that measuring it over every point gives, on chunks of every shape, length and
// width, those too wide for exact hulls included.
func TestBestLineByHull(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var sc, ref decimalScratch
	same := func(mant []int64, what string) {
		t.Helper()
		got, gotOK := bestLineBy(mant, &sc, true)
		want, wantOK := bestLineBy(mant, &ref, false)
		require.Equal(t, wantOK, gotOK, what)
		require.Equal(t, want, got, "%s: %d points", what, len(mant))
	}
	byHull := 0
	for round := range 20_000 {
		n := 3 + rng.IntN(samplesPerChunk)
		if rng.IntN(20) == 0 {
			n = 3 + rng.IntN(maxPackedSamples-2)
		}
		base := rng.Int64N(1<<53) - 1<<52
		jitter := int64(1) << uint(rng.IntN(54))
		slope := rng.Int64N(1<<uint(1+rng.IntN(44))) - 1<<uint(rng.IntN(43))
		mant := make([]int64, n)
		m := base
		for i := range mant {
			switch round % 5 {
			case 0: // a line with jitter
				m = base + slope*int64(i)%(1<<50) + rng.Int64N(jitter)
			case 1: // a random walk
				m += rng.Int64N(jitter) - jitter/2
			case 2: // steps
				if rng.IntN(20) == 0 {
					m += rng.Int64N(jitter)
				}
			case 3: // a line with a few far outliers
				m = base + int64(i)*(slope%1_000_000)
				if rng.IntN(30) == 0 {
					m += rng.Int64N(jitter) - jitter/2
				}
			default: // anything a decimal holds
				m = rng.Int64N(1<<54) - 1<<53
			}
			mant[i] = min(max(m, -(maxMantissa-1)), maxMantissa-1)
		}
		if span := slices.Max(mant) - slices.Min(mant); span < hullSpan {
			byHull++
		}
		same(mant, fmt.Sprintf("round %d", round))
	}
	require.Greater(t, byHull, 10_000, "most rounds take the hulls' shortcut")

	// A long line with one far outlier: the span is past hullSpan, where the hulls' products
	// would overflow an int64 (and drop the outlier from the hull), so both measure every point
	// and find that no line packs it.
	for _, j := range []int{1, 100, 2000, 3998} {
		for _, off := range []int64{-(1 << 51), 1 << 51, -(1 << 52), 1 << 52} {
			mant := make([]int64, 4000)
			for i := range mant {
				mant[i] = -(1 << 51) + 60602*int64(i) + int64(i*i%7)
			}
			mant[j] += off
			same(mant, fmt.Sprintf("outlier %d at %d", off, j))
		}
	}
}
