package tsdb

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The packed chunk: the decimal chunk (decimal.go) with its values bit-packed.
//
// In the decimal layout every value term is a byte-aligned varint. Scraped counters grow by a
// rate with jitter, and their low bits are nearly random: a varint rounds them up to whole
// 7-bit groups, deltas of deltas double the jitter's range, and zstd cannot squeeze either. The
// packed layout writes each term in the bits it needs. For a counter the terms are the
// residuals from the chunk's straight line (the jitter alone, not its difference), for a
// wandering gauge the deltas, each less the chunk's minimum, in a truncated binary code of the
// chunk's range R (log2 R bits, not rounded up to a whole bit per term). Mostly constant values
// (file system sizes) keep the varint terms, which zstd compresses to nearly nothing, and
// regularly spaced timestamps take one varint per chunk. The encoder picks, per chunk, the mode
// that costs least.
//
// Layout after the chunk value's encoding byte and maxt-mint (see encodeChunkValue):
//
//	uvarint  number of samples n (1..maxPackedSamples); the first timestamp is the key's mint
//	byte     decimal exponent e: value = mantissa / 10^e (0..maxDecimalExp)
//	byte     modes: bits 0-3 the value mode (below); bit 4 set when the timestamps are regular
//	timestamps, regular: (n > 1 only) zigzag varint of the one delta between all timestamps
//	            otherwise: n-1 deltas of deltas as zigzag varints (the first is the delta)
//	values by mode:
//	  0  zigzag varints: the first mantissa, then n-1 deltas            (as decimal mode 0)
//	  1  zigzag varints: the first mantissa, the first delta, then n-2 deltas of deltas
//	  2  line: zigzag varint base, zigzag varint num, uvarint den (>= 1), uvarint R-1, then
//	     n residuals r_i in [0, R) bit-packed: mantissa_i = base + floor(num*i/den) + r_i
//	  3  packed deltas: zigzag varint first mantissa, zigzag varint dmin, uvarint R-1, then
//	     n-1 terms r_i in [0, R) bit-packed: mantissa_i = mantissa_i-1 + dmin + r_i
//
// Bit-packed terms are in a truncated binary code of R, least significant bit first in
// little-endian bytes, the last byte padded with zero bits; the chunk ends with that byte. With
// k = floor(log2 R) and u = 2^(k+1) - R, a term reads k bits as x; x < u is the term, otherwise
// one more bit e makes it u + 2(x-u) + e. R = 1 takes no bits at all (a constant, a constant
// rate).
const (
	encPacked chunkenc.Encoding = 0xD2

	// maxPackedSamples bounds n: a chunk of constant values can claim many samples in a few
	// bytes, and a corrupt one must not make the reader allocate without bound. Float chunks
	// are cut at samplesPerChunk.
	maxPackedSamples = 1 << 12
	// maxPackedBits is the widest bit-packed term: wider ranges are no cheaper packed than as
	// varints, and terms up to 49 bits keep the bit reader within one 64-bit word.
	maxPackedBits = 48
	// maxPackedTerm bounds the bases, slopes and minimum deltas a reader accepts, so that no
	// sum of them overflows an int64.
	maxPackedTerm = 1 << 60

	packedRegular = 1 << 4
)

// appendPackedChunk appends the packed layout of a float chunk to b and reports whether it
// could; b is unchanged when it could not.
func appendPackedChunk(b []byte, chk chunkenc.Chunk, sc *decimalScratch) ([]byte, bool) {
	exp, ok := sc.load(chk)
	if !ok || len(sc.ts) > maxPackedSamples {
		return b, false
	}
	return appendPackedMantissas(b, sc.ts, sc.mant, exp, sc), true
}

// packedPlan is a bit-packed value mode the encoder considered: its parameters and cost.
type packedPlan struct {
	mode          byte
	base, num     int64 // mode 2: base, slope numerator; mode 3: dmin in base
	den           int64
	r             uint64 // the range R
	bits          float64
	headerVarints []int64
}

func appendPackedMantissas(b []byte, ts, mant []int64, exp int, sc *decimalScratch) []byte {
	n := len(ts)
	regular := true
	for i := 2; i < n && regular; i++ {
		regular = ts[i]-ts[i-1] == ts[1]-ts[0]
	}

	// The cheapest value mode, in bytes as they will be on disk: bit-packed bits are, varints
	// are estimated (varintCost).
	mode, cost := byte(0), varintCost(mant, 0, true)
	if c := varintCost(mant, 1, true); c < cost {
		mode, cost = 1, c
	}
	var plan packedPlan
	if p, ok := bestLine(mant, sc); ok && p.bits/8 < cost {
		plan, cost = p, p.bits/8
	}
	if p, ok := packedDeltas(mant); ok && p.bits/8 < cost {
		plan, cost = p, p.bits/8
	}
	if plan.r != 0 {
		mode = plan.mode
	}

	b = binary.AppendUvarint(b, uint64(n))
	modes := mode
	if regular {
		modes |= packedRegular
	}
	b = append(b, byte(exp), modes)
	if regular {
		if n > 1 {
			b = binary.AppendVarint(b, ts[1]-ts[0])
		}
	} else {
		b = appendTimestampDoDs(b, ts)
	}
	switch mode {
	case 0, 1:
		return appendVarintTerms(b, mant, mode)
	case 2:
		b = binary.AppendVarint(b, plan.base)
		b = binary.AppendVarint(b, plan.num)
		b = binary.AppendUvarint(b, uint64(plan.den))
		b = binary.AppendUvarint(b, plan.r-1)
		w := newTruncWriter(b, plan.r)
		for i, m := range mant {
			w.put(uint64(m - plan.base - floorDiv(plan.num*int64(i), plan.den)))
		}
		return w.finish()
	default: // 3
		b = binary.AppendVarint(b, mant[0])
		b = binary.AppendVarint(b, plan.base)
		b = binary.AppendUvarint(b, plan.r-1)
		w := newTruncWriter(b, plan.r)
		for i := 1; i < n; i++ {
			w.put(uint64(mant[i] - mant[i-1] - plan.base))
		}
		return w.finish()
	}
}

// bestLine finds the line base + floor(num*i/den) under the points (i, mant[i]) that leaves the
// smallest range of residuals. The narrowest strip holding a set of points has one side along
// an edge of their convex hull, so the candidate slopes are those of the hull's edges, and 0.
func bestLine(mant []int64, sc *decimalScratch) (packedPlan, bool) {
	n := len(mant)
	best := packedPlan{}
	try := func(num, den int64) {
		if den <= 0 || outside(num, maxPackedTerm/int64(n)) {
			return
		}
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		for i, m := range mant {
			r := m - floorDiv(num*int64(i), den)
			lo, hi = min(lo, r), max(hi, r)
		}
		if hi-lo < 0 || uint64(hi-lo) >= 1<<maxPackedBits || outside(lo, maxPackedTerm) {
			return
		}
		p := packedPlan{mode: 2, base: lo, num: num, den: den, r: uint64(hi-lo) + 1}
		p.bits = float64(truncBits(p.r, mant, func(i int, m int64) uint64 {
			return uint64(m - lo - floorDiv(num*int64(i), den))
		})) + 8*float64(varintLen(lo)+varintLen(num)+uvarintLen(uint64(den))+uvarintLen(p.r-1))
		if best.r == 0 || p.bits < best.bits {
			best = p
		}
	}
	try(0, 1)
	if n > 2 {
		// Monotone chain: the lower hull, then the upper one, of points ordered by i.
		for _, sign := range []int64{1, -1} {
			hull := sc.hull[:0]
			for i := range n {
				for len(hull) >= 2 {
					a, c := hull[len(hull)-2], hull[len(hull)-1]
					// Floats: the hull only proposes slopes, each checked exactly by try.
					cross := float64(c-a)*float64(sign*(mant[i]-mant[a])) - float64(sign*(mant[c]-mant[a]))*float64(i-a)
					if cross > 0 {
						break
					}
					hull = hull[:len(hull)-1]
				}
				hull = append(hull, i)
			}
			for j := 1; j < len(hull); j++ {
				a, c := hull[j-1], hull[j]
				dy, dx := mant[c]-mant[a], int64(c-a)
				try(dy, dx)
				if dx > 1 {
					// A whole slope saves header bytes where the jitter dwarfs its error.
					try(floorDiv(2*dy+dx, 2*dx), 1)
				}
			}
			sc.hull = hull
		}
	} else if n == 2 {
		try(mant[1]-mant[0], 1)
	}
	return best, best.r != 0
}

// packedDeltas is the plan of mode 3: the deltas less their minimum.
func packedDeltas(mant []int64) (packedPlan, bool) {
	if len(mant) < 2 {
		return packedPlan{}, false
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for i := 1; i < len(mant); i++ {
		d := mant[i] - mant[i-1]
		lo, hi = min(lo, d), max(hi, d)
	}
	if hi-lo < 0 || uint64(hi-lo) >= 1<<maxPackedBits || outside(lo, maxPackedTerm) {
		return packedPlan{}, false
	}
	p := packedPlan{mode: 3, base: lo, r: uint64(hi-lo) + 1}
	p.bits = float64(truncBits(p.r, mant[1:], func(i int, m int64) uint64 {
		return uint64(m - mant[i] - lo) // mant[1:][i] - mant[i]
	})) + 8*float64(varintLen(mant[0])+varintLen(lo)+uvarintLen(p.r-1))
	return p, true
}

// truncBits is the number of bits the terms term(i, ms[i]) take in the truncated binary code
// of r.
func truncBits(r uint64, ms []int64, term func(int, int64) uint64) int {
	k := uint(bits.Len64(r) - 1)
	u := uint64(1)<<(k+1) - r
	total := 0
	for i, m := range ms {
		total += int(k)
		if term(i, m) >= u {
			total++
		}
	}
	return total
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// outside reports whether v is outside [-lim, lim].
func outside(v, lim int64) bool { return v > lim || v < -lim }

// truncWriter appends terms in the truncated binary code of r, least significant bit first.
type truncWriter struct {
	b    []byte
	acc  uint64
	nacc uint
	k    uint
	u    uint64
}

func newTruncWriter(b []byte, r uint64) truncWriter {
	k := uint(bits.Len64(r) - 1)
	return truncWriter{b: b, k: k, u: uint64(1)<<(k+1) - r}
}

func (w *truncWriter) put(v uint64) {
	if v < w.u {
		w.bits(v, w.k)
		return
	}
	v -= w.u
	w.bits(w.u+v>>1, w.k)
	w.bits(v&1, 1)
}

func (w *truncWriter) bits(v uint64, k uint) {
	w.acc |= v << w.nacc
	w.nacc += k
	for w.nacc >= 8 {
		w.b = append(w.b, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *truncWriter) finish() []byte {
	if w.nacc > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	return w.b
}

// truncReader reads what truncWriter wrote.
type truncReader struct {
	data []byte
	pos  int
	acc  uint64
	nacc uint
	k    uint
	u    uint64
	mask uint64
}

func newTruncReader(data []byte, pos int, r uint64) truncReader {
	k := uint(bits.Len64(r) - 1)
	return truncReader{data: data, pos: pos, k: k, u: uint64(1)<<(k+1) - r, mask: uint64(1)<<k - 1}
}

// get returns the next term, false when the data ends inside it.
func (rd *truncReader) get() (uint64, bool) {
	if rd.nacc <= rd.k {
		rd.refill()
		if rd.nacc < rd.k {
			return 0, false
		}
	}
	x := rd.acc & rd.mask
	rd.acc >>= rd.k
	rd.nacc -= rd.k
	if x < rd.u {
		return x, true
	}
	if rd.nacc == 0 {
		rd.refill()
		if rd.nacc == 0 {
			return 0, false
		}
	}
	e := rd.acc & 1
	rd.acc >>= 1
	rd.nacc--
	return rd.u + 2*(x-rd.u) + e, true
}

func (rd *truncReader) refill() {
	if rd.pos+8 <= len(rd.data) {
		// Whole bytes up to 56 bits in the accumulator in one load.
		v := binary.LittleEndian.Uint64(rd.data[rd.pos:])
		take := (63 - rd.nacc) / 8
		rd.acc |= (v & (uint64(1)<<(take*8) - 1)) << rd.nacc
		rd.nacc += take * 8
		rd.pos += int(take)
		return
	}
	for rd.nacc <= 56 && rd.pos < len(rd.data) {
		rd.acc |= uint64(rd.data[rd.pos]) << rd.nacc
		rd.nacc += 8
		rd.pos++
	}
}

// done reports whether the terms read used up data exactly: what is left in the accumulator is
// the last byte's padding, which must be zero bits.
func (rd *truncReader) done() bool {
	return rd.pos == len(rd.data) && rd.nacc < 8 && rd.acc == 0
}

// decodePacked decodes a packed chunk into it.ts and it.vs.
func (it *decimalIterator) decodePacked(mint int64, data []byte) error {
	n, w := binary.Uvarint(data)
	if w <= 0 || n == 0 || n > maxPackedSamples || len(data) < w+2 {
		return errCorruptDecimal
	}
	exp, modes := int(data[w]), data[w+1]
	mode := modes &^ packedRegular
	if exp > maxDecimalExp || mode > 3 {
		return errCorruptDecimal
	}
	pos := w + 2
	ts := growInt64(it.ts, int(n))
	vs := growFloat64(it.vs, int(n))
	it.ts, it.vs = ts, vs
	ts[0] = mint
	if modes&packedRegular != 0 {
		if n > 1 {
			var d int64
			if d, pos = readZigzag(data, pos); pos < 0 {
				return errCorruptDecimal
			}
			t := mint
			for i := 1; i < len(ts); i++ {
				t += d
				ts[i] = t
			}
		}
	} else if pos = readTimestampDoDs(ts, data, pos); pos < 0 {
		return errCorruptDecimal
	}
	div := pow10[exp]
	switch mode {
	case 0, 1:
		if pos = readVarintTerms(vs, div, data, pos, mode); pos < 0 {
			return errCorruptDecimal
		}
		if pos != len(data) {
			return errCorruptDecimal
		}
		return nil
	case 2:
		var base, num int64
		var den, r1 uint64
		if base, pos = readZigzag(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if num, pos = readZigzag(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if den, pos = readUvarint(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if r1, pos = readUvarint(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if outside(base, maxPackedTerm) || outside(num, maxPackedTerm/int64(n)) || den == 0 ||
			den > maxPackedTerm || r1 >= 1<<maxPackedBits {
			return errCorruptDecimal
		}
		rd := newTruncReader(data, pos, r1+1)
		for i := range vs {
			x, ok := rd.get()
			if !ok {
				return errCorruptDecimal
			}
			m := base + floorDiv(num*int64(i), int64(den)) + int64(x)
			if outside(m, maxMantissa-1) {
				return errCorruptDecimal
			}
			vs[i] = float64(m) / div
		}
		if !rd.done() {
			return errCorruptDecimal
		}
		return nil
	default: // 3
		var m, dmin int64
		var r1 uint64
		if m, pos = readZigzag(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if dmin, pos = readZigzag(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if r1, pos = readUvarint(data, pos); pos < 0 {
			return errCorruptDecimal
		}
		if outside(m, maxMantissa-1) || outside(dmin, maxPackedTerm) || r1 >= 1<<maxPackedBits {
			return errCorruptDecimal
		}
		vs[0] = float64(m) / div
		rd := newTruncReader(data, pos, r1+1)
		for i := 1; i < len(vs); i++ {
			x, ok := rd.get()
			if !ok {
				return errCorruptDecimal
			}
			m += dmin + int64(x)
			if outside(m, maxMantissa-1) {
				return errCorruptDecimal
			}
			vs[i] = float64(m) / div
		}
		if !rd.done() {
			return errCorruptDecimal
		}
		return nil
	}
}

// readUvarint is readZigzag without the zigzag.
func readUvarint(data []byte, pos int) (uint64, int) {
	var u uint64
	for s := uint(0); s < 64; s += 7 {
		if pos >= len(data) {
			return 0, -1
		}
		c := data[pos]
		pos++
		if c < 0x80 {
			return u | uint64(c)<<s, pos
		}
		u |= uint64(c&0x7f) << s
	}
	return 0, -1
}
