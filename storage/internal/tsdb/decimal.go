package tsdb

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The decimal chunk: how a closed float chunk is stored when every value is a short decimal.
//
// Most scraped values are integers (counters) or decimals with a few digits (gauges that were
// printed as text by an exporter). XOR compression spends 10-40 bits on each such value, because
// the binary mantissa of 12.34 is long. Written as an integer mantissa with one decimal exponent
// per chunk, the same values are small integers whose differences are smaller still, as
// VictoriaMetrics stores them. The encoding is columnar (all timestamps, then all values) and
// byte-aligned, so that Pebble's zstd compresses the runs that regular scrapes produce (equal
// timestamp deltas, constant counter rates) to almost nothing.
//
// A chunk is only written this way when it decodes back bit for bit (-0, NaN, stale markers and
// values with more than 15 significant digits keep XOR) and has no start timestamps. Stores
// write the packed layout now (packed.go); in memory, open heads are in the stream layout
// (stream.go), which is appended to. A stored decimal chunk that is reopened as a head (after a
// restart) is converted to a stream head first (builderFromStored).
//
// Layout after the chunk value's encoding byte and maxt-mint (see encodeChunkValue):
//
//	uvarint  number of samples n (>= 1); the first timestamp is the key's mint
//	byte     decimal exponent e: value = mantissa / 10^e (0..maxDecimalExp)
//	byte     value mode: 0 = first mantissa then deltas, 1 = first mantissa, first delta, then
//	         deltas of deltas
//	n-1      timestamp deltas of deltas (zigzag varints; the first is the delta itself)
//	n        value terms (zigzag varints) as the mode says
const (
	// encDecimal marks a decimal chunk in a chunk value. It is outside chunkenc's encodings
	// (they are below 0x10) so the two can never be confused.
	encDecimal chunkenc.Encoding = 0xD1

	maxDecimalExp = 15
	// maxMantissa keeps mantissas exact in a float64 and their differences inside int64.
	maxMantissa = 1 << 53
)

var pow10 = func() (p [maxDecimalExp + 1]float64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// decimalScratch holds the buffers of one encoding; callers hold DB.writeMu.
type decimalScratch struct {
	ts     []int64
	vs     []float64
	mant   []int64
	hull   []int      // packed.go's bestLine: the lower hull
	hullUp []int      // and the upper one
	cands  []lineCand // and its candidate slopes
	extra  []uint64   // packed.go's truncWriter
}

// appendDecimalChunk appends the decimal layout of a float chunk to b and reports whether it
// could; b is unchanged when it could not. Stores write the packed layout (packed.go) since it
// exists; this one is kept to write the chunks of older stores in tests, and its reader for good.
func appendDecimalChunk(b []byte, chk chunkenc.Chunk, sc *decimalScratch) ([]byte, bool) {
	exp, ok := sc.load(chk)
	if !ok {
		return b, false
	}
	mode := byte(0)
	if varintCost(sc.mant, 1, false) < varintCost(sc.mant, 0, false) {
		mode = 1
	}
	b = binary.AppendUvarint(b, uint64(len(sc.ts)))
	b = append(b, byte(exp), mode)
	b = appendTimestampDoDs(b, sc.ts)
	return appendVarintTerms(b, sc.mant, mode), true
}

// load reads a float chunk into sc.ts and sc.mant and returns the smallest decimal exponent
// that gives every value back bit for bit; false when there is none, or the chunk holds
// anything but plain floats (start timestamps, histograms).
func (sc *decimalScratch) load(chk chunkenc.Chunk) (int, bool) {
	if c, ok := chk.(*streamChunk); ok {
		// Its mantissas are stored at the chunk's exponent, the smallest that fits every
		// value (appendFloat raises it only as far as a value needs): no float is looked at.
		var err error
		if sc.ts, sc.mant, err = decodeStreamInts(sc.ts, sc.mant, c.b); err != nil {
			return 0, false
		}
		return int(c.exp), true
	}
	sc.ts, sc.vs = sc.ts[:0], sc.vs[:0]
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat || it.AtST() != 0 {
			return 0, false
		}
		t, v := it.At()
		sc.ts, sc.vs = append(sc.ts, t), append(sc.vs, v)
	}
	if it.Err() != nil || len(sc.ts) == 0 {
		return 0, false
	}
	return sc.mantissas()
}

// loadSamples is load for float samples already decoded (merge.go).
func (sc *decimalScratch) loadSamples(smps []sample) (int, bool) {
	sc.ts, sc.vs = sc.ts[:0], sc.vs[:0]
	for _, s := range smps {
		if s.st != 0 || s.h != nil || s.fh != nil {
			return 0, false
		}
		sc.ts, sc.vs = append(sc.ts, s.t), append(sc.vs, s.f)
	}
	if len(sc.ts) == 0 {
		return 0, false
	}
	return sc.mantissas()
}

// mantissas sets sc.mant from sc.vs and returns their exponent; see load.
func (sc *decimalScratch) mantissas() (int, bool) {
	exp := 0
	for _, v := range sc.vs {
		// Most values fit the exponent found so far: one trial instead of a search.
		if fitsExponent(v, exp) {
			continue
		}
		e, ok := decimalExponent(v, exp+1)
		if !ok {
			return 0, false
		}
		exp = e
	}
	sc.mant = sc.mant[:0]
	for _, v := range sc.vs {
		m := math.Round(v * pow10[exp])
		if math.Abs(m) >= maxMantissa || math.Float64bits(m/pow10[exp]) != math.Float64bits(v) {
			return 0, false
		}
		sc.mant = append(sc.mant, int64(m))
	}
	return exp, true
}

// varintCost is the size in bytes of the value terms of mode (0 deltas, 1 deltas of deltas)
// as zigzag varints. With runs, a zero term that follows a zero term counts 1/8 byte: Pebble's
// zstd squeezes runs of zero bytes to almost nothing, and the packed layout compares its
// incompressible bits against what these bytes will cost on disk.
func varintCost(mant []int64, mode byte, runs bool) float64 {
	var size float64
	var prevDelta, prevTerm int64
	for i := 1; i < len(mant); i++ {
		d := mant[i] - mant[i-1]
		term := d
		if mode == 1 && i > 1 {
			term = d - prevDelta
		}
		prevDelta = d
		if runs && term == 0 && prevTerm == 0 && i > 1 {
			size += 0.125
		} else {
			size += float64(varintLen(term))
		}
		prevTerm = term
	}
	return size + float64(varintLen(mant[0]))
}

// appendTimestampDoDs appends the n-1 timestamp deltas of deltas (the first is the delta
// itself) as zigzag varints.
func appendTimestampDoDs(b []byte, ts []int64) []byte {
	var prevDelta int64
	for i := 1; i < len(ts); i++ {
		d := ts[i] - ts[i-1]
		b = binary.AppendVarint(b, d-prevDelta)
		prevDelta = d
	}
	return b
}

// appendVarintTerms appends the first mantissa then the deltas (mode 0) or the first delta and
// the deltas of deltas (mode 1), as zigzag varints.
func appendVarintTerms(b []byte, mant []int64, mode byte) []byte {
	b = binary.AppendVarint(b, mant[0])
	var prevDelta int64
	for i := 1; i < len(mant); i++ {
		d := mant[i] - mant[i-1]
		if mode == 1 {
			b = binary.AppendVarint(b, d-prevDelta)
			prevDelta = d
		} else {
			b = binary.AppendVarint(b, d)
		}
	}
	return b
}

// fitsExponent reports whether v is mantissa/10^e for an integer mantissa, bit for bit. NaN,
// infinities and -0 never fit (their bits do not come back).
func fitsExponent(v float64, e int) bool {
	if v == 0 && math.Signbit(v) {
		return false // the integer mantissa 0 has no sign
	}
	m := math.Round(v * pow10[e])
	return math.Abs(m) < maxMantissa && math.Float64bits(m/pow10[e]) == math.Float64bits(v)
}

// decimalExponent is the smallest exponent e >= from such that v fits it; false when there is
// none up to maxDecimalExp.
func decimalExponent(v float64, from int) (int, bool) {
	for e := from; e <= maxDecimalExp; e++ {
		if fitsExponent(v, e) {
			return e, true
		}
	}
	return 0, false
}

func varintLen(v int64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutVarint(buf[:], v)
}

var errCorruptDecimal = errors.New("corrupt decimal chunk")

// decimalIterator iterates a decimal chunk, decoded whole when it is reset (a closed chunk holds
// about 120 samples, so this is one short loop and two small reused slices).
type decimalIterator struct {
	ts    []int64
	vs    []float64
	mant  []int64  // a stream chunk's mantissas (decodeStream)
	terms []uint64 // the bit-packed terms of a packed chunk
	pad   []byte   // their bytes, copied and zero-padded (readTruncTerms)
	i     int
	err   error
}

// reset decodes a chunk of encoding enc, encDecimal, encPacked or encStream.
func (it *decimalIterator) reset(enc chunkenc.Encoding, mint int64, data []byte) {
	it.ts, it.vs, it.i, it.err = it.ts[:0], it.vs[:0], -1, nil
	decode := it.decode
	switch enc {
	case encPacked:
		decode = it.decodePacked
	case encStream:
		decode = it.decodeStream
	}
	if err := decode(mint, data); err != nil {
		it.ts, it.vs, it.err = it.ts[:0], it.vs[:0], err
	}
}

func (it *decimalIterator) decode(mint int64, data []byte) error {
	n, w := binary.Uvarint(data)
	if w <= 0 || n == 0 || n > uint64(len(data)) || len(data) < w+2 {
		return errCorruptDecimal
	}
	exp, mode := int(data[w]), data[w+1]
	if exp > maxDecimalExp || mode > 1 {
		return errCorruptDecimal
	}
	pos := w + 2
	// Every sample holds at least one byte per column, so n (at most len(data)) bounds the slices.
	ts := growInt64(it.ts, int(n))
	vs := growFloat64(it.vs, int(n))
	it.ts, it.vs = ts, vs
	ts[0] = mint
	if pos = readTimestampDoDs(ts, data, pos); pos < 0 {
		return errCorruptDecimal
	}
	if pos = readVarintTerms(vs, pow10[exp], data, pos, mode); pos < 0 || pos != len(data) {
		return errCorruptDecimal
	}
	return nil
}

func growInt64(s []int64, n int) []int64       { return slices.Grow(s[:0], n)[:n] }
func growFloat64(s []float64, n int) []float64 { return slices.Grow(s[:0], n)[:n] }

// readTimestampDoDs fills ts[1:] from deltas of deltas at data[pos:], ts[0] being set; it
// returns the position after them, negative when data is corrupt.
func readTimestampDoDs(ts []int64, data []byte, pos int) int {
	t, delta := ts[0], int64(0)
	var x int64
	for i := 1; i < len(ts); i++ {
		if x, pos = readZigzag(data, pos); pos < 0 {
			return pos
		}
		delta += x
		t += delta
		ts[i] = t
	}
	return pos
}

// readVarintTerms fills vs from the varint value terms of mode at data[pos:] (see
// appendVarintTerms); it returns the position after them, negative when data is corrupt.
func readVarintTerms(vs []float64, div float64, data []byte, pos int, mode byte) int {
	var m, x int64
	if m, pos = readZigzag(data, pos); pos < 0 {
		return pos
	}
	// Division, not multiplication by 10^-e: the encoder checked that m / 10^e gives the value
	// back bit for bit, which only the same division guarantees.
	vs[0] = float64(m) / div
	delta := int64(0)
	for i := 1; i < len(vs); i++ {
		if x, pos = readZigzag(data, pos); pos < 0 {
			return pos
		}
		if mode == 1 {
			delta += x
		} else {
			delta = x
		}
		m += delta
		vs[i] = float64(m) / div
	}
	return pos
}

// readZigzag reads the zigzag varint at data[pos:] and returns it with the position after it,
// or a negative position when data ends inside it or it is longer than 64 bits: readUvarint
// (packed.go), then the zigzag.
func readZigzag(data []byte, pos int) (int64, int) {
	u, pos := readUvarint(data, pos)
	return int64(u>>1) ^ -int64(u&1), pos
}

func (it *decimalIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.ts) {
		it.i = len(it.ts)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *decimalIterator) Seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for it.i < len(it.ts) && it.ts[it.i] < t {
		it.i++
	}
	if it.i >= len(it.ts) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *decimalIterator) At() (int64, float64) { return it.ts[it.i], it.vs[it.i] }

func (it *decimalIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	panic("decimal chunks hold floats only")
}

func (it *decimalIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	panic("decimal chunks hold floats only")
}

func (it *decimalIterator) AtT() int64  { return it.ts[it.i] }
func (it *decimalIterator) AtST() int64 { return 0 }
func (it *decimalIterator) Err() error  { return it.err }
