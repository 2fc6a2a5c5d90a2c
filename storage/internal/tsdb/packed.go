package tsdb

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"slices"

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
// chunk's range R (floor(log2 R) or one bit more a term, not whole bytes). Mostly constant values
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
// Bit-packed terms are in a truncated binary code of R: with k = floor(log2 R) and
// u = 2^(k+1) - R, a term v < u is x = v in k bits, a term v >= u is x = u + (v-u)/2 in k bits
// and the extra bit (v-u) mod 2. The k-bit parts of all terms come first (term i at bit i*k),
// then the extra bits in order, least significant bit first in little-endian bytes, the last
// byte padded with zero bits; the chunk ends with that byte. R = 1 takes no bits at all (a
// constant, a constant rate). storage/FORMAT.md has the bounds a reader checks.
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

// appendPackedSamples is appendPackedChunk for float samples already decoded: merging closed
// chunks (merge.go) encodes what it read without building an XOR2 chunk first.
func appendPackedSamples(b []byte, smps []sample, sc *decimalScratch) ([]byte, bool) {
	exp, ok := sc.loadSamples(smps)
	if !ok || len(sc.ts) > maxPackedSamples {
		return b, false
	}
	return appendPackedMantissas(b, sc.ts, sc.mant, exp, sc), true
}

// packedPlan is a bit-packed value mode the encoder considered: its parameters and cost.
type packedPlan struct {
	mode      byte
	base, num int64 // mode 2: base, slope numerator; mode 3: dmin in base
	den       int64
	r         uint64  // the range R
	bits      float64 // the cost in bits, header included
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
		w := newTruncWriter(b, plan.r, sc.extra)
		l := newLineWalk(plan.num, plan.den)
		for _, m := range mant {
			w.put(uint64(m - plan.base - l.next()))
		}
		out := w.finish()
		sc.extra = w.extra
		return out
	default: // 3
		b = binary.AppendVarint(b, mant[0])
		b = binary.AppendVarint(b, plan.base)
		b = binary.AppendUvarint(b, plan.r-1)
		w := newTruncWriter(b, plan.r, sc.extra)
		for i := 1; i < n; i++ {
			w.put(uint64(mant[i] - mant[i-1] - plan.base))
		}
		out := w.finish()
		sc.extra = w.extra
		return out
	}
}

// bestLine finds the line base + floor(num*i/den) under the points (i, mant[i]) that leaves the
// smallest range of residuals. The narrowest strip holding a set of points has one side along
// an edge of their convex hull, so the candidate slopes are those of the hull's edges (and the
// whole slopes nearest them, cheaper to store), and 0.
func bestLine(mant []int64, sc *decimalScratch) (packedPlan, bool) {
	return bestLineBy(mant, sc, true)
}

// hullSpan bounds the mantissas' span (largest less smallest) for which bestLine works on the
// hulls in exact integers: with at most maxPackedSamples (2^12) points, every product it forms
// stays below 2^62.
const hullSpan = 1 << 50

// bestLineBy is bestLine; byHull false measures every candidate over all points, as bestLine
// does when the span is too wide for exact hulls (the reference the shortcut is tested against).
func bestLineBy(mant []int64, sc *decimalScratch, byHull bool) (packedPlan, bool) {
	n := len(mant)
	// Candidates are compared by an estimate (log2 R bits a term); the winner's exact cost is
	// counted once at the end.
	var best packedPlan
	bestEst := math.Inf(1)
	consider := func(num, den, lo, hi int64) {
		if hi-lo < 0 || uint64(hi-lo) >= 1<<maxPackedBits || !lineFits(lo, num, den, uint64(hi-lo), n) {
			return
		}
		r := uint64(hi-lo) + 1
		est := float64(n)*math.Log2(float64(r)) + 8*float64(varintLen(lo)+varintLen(num)+uvarintLen(uint64(den))+uvarintLen(r-1))
		if est < bestEst {
			best, bestEst = packedPlan{mode: 2, base: lo, num: num, den: den, r: r}, est
		}
	}
	// scan measures the residuals m - floor(num*i/den) of every point.
	scan := func(num, den int64) {
		if den <= 0 || outside(num, maxPackedTerm/int64(n)) {
			return
		}
		lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
		l := newLineWalk(num, den)
		for _, m := range mant {
			r := m - l.next()
			lo, hi = min(lo, r), max(hi, r)
		}
		consider(num, den, lo, hi)
	}
	if n <= 2 {
		scan(0, 1)
		if n == 2 {
			scan(mant[1]-mant[0], 1)
		}
		return finishLine(best, mant)
	}
	lo, hi := slices.Min(mant), slices.Max(mant)
	exact := hi-lo >= 0 && hi-lo < hullSpan
	// Monotone chain: the lower hull, then the upper one, of points ordered by i.
	hulls := [2][]int{sc.hull[:0], sc.hullUp[:0]}
	for h, sign := range []int64{1, -1} {
		hull := hulls[h]
		for i := range n {
			for len(hull) >= 2 {
				a, c := hull[len(hull)-2], hull[len(hull)-1]
				var turns bool
				if exact {
					turns = int64(c-a)*(sign*(mant[i]-mant[a]))-(sign*(mant[c]-mant[a]))*int64(i-a) > 0
				} else {
					// Floats: the hull only proposes slopes, each measured by scan.
					turns = float64(c-a)*float64(sign*(mant[i]-mant[a]))-float64(sign*(mant[c]-mant[a]))*float64(i-a) > 0
				}
				if turns {
					break
				}
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, i)
		}
		hulls[h] = hull
	}
	sc.hull, sc.hullUp = hulls[0], hulls[1]
	// try measures a candidate exactly. On exact hulls it reads their vertices only: with
	// m_i = m_0 + d_i, the residual m_i - floor(num*i/den) is m_0 + ceil(y_i/den) with
	// y_i = d_i*den - num*i, a linear function of the point, least at a vertex of the lower hull
	// and greatest at one of the upper hull; ceil keeps the order, so those vertices give the
	// exact least and greatest residuals. (|d_i*den| < 2^50 * 2^12, |num*i| <= 2^60: no
	// overflow.)
	try := scan
	if exact && byHull {
		try = func(num, den int64) {
			if den <= 0 || outside(num, maxPackedTerm/int64(n)) {
				return
			}
			m0 := mant[0]
			ylo, yhi := int64(math.MaxInt64), int64(math.MinInt64)
			for _, i := range hulls[0] {
				ylo = min(ylo, (mant[i]-m0)*den-num*int64(i))
			}
			for _, i := range hulls[1] {
				yhi = max(yhi, (mant[i]-m0)*den-num*int64(i))
			}
			consider(num, den, m0+ceilDiv(ylo, den), m0+ceilDiv(yhi, den))
		}
	}
	try(0, 1)
	// The residuals m - (num*i/den) of a line are a linear function of the points, so their
	// least is at a vertex of the lower hull and their greatest at one of the upper hull: a
	// candidate's range is estimated from the hulls' few vertices. Only the few best estimates
	// are then measured exactly.
	cands := sc.cands[:0]
	estimate := func(num, den int64) {
		if den <= 0 || outside(num, maxPackedTerm/int64(n)) {
			return
		}
		slope := float64(num) / float64(den)
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, i := range hulls[0] {
			lo = min(lo, float64(mant[i])-slope*float64(i))
		}
		for _, i := range hulls[1] {
			hi = max(hi, float64(mant[i])-slope*float64(i))
		}
		r := hi - lo + 2 // + 2: the floors, either way
		est := float64(n)*math.Log2(r) + 8*float64(varintLen(num)+uvarintLen(uint64(den)))
		cands = append(cands, lineCand{num, den, est})
	}
	for _, hull := range hulls {
		for j := 1; j < len(hull); j++ {
			a, c := hull[j-1], hull[j]
			dy, dx := mant[c]-mant[a], int64(c-a)
			estimate(dy, dx)
			if dx > 1 {
				// A whole slope saves header bytes where the jitter dwarfs its error.
				estimate(floorDiv(2*dy+dx, 2*dx), 1)
			}
		}
	}
	slices.SortFunc(cands, func(a, b lineCand) int { return cmp.Compare(a.est, b.est) })
	for _, c := range cands[:min(len(cands), exactLineTries)] {
		try(c.num, c.den)
	}
	sc.cands = cands[:0]
	return finishLine(best, mant)
}

// ceilDiv is the ceiling of a/b for b > 0.
func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a > 0 {
		q++
	}
	return q
}

// lineCand is a slope bestLine considers, with its estimated cost in bits.
type lineCand struct {
	num, den int64
	est      float64
}

// exactLineTries is how many of bestLine's candidate slopes, best estimates first, are measured
// exactly over all points.
const exactLineTries = 4

// finishLine counts the exact bits of bestLine's winner, if any.
func finishLine(best packedPlan, mant []int64) (packedPlan, bool) {
	if best.r == 0 {
		return best, false
	}
	k, u := truncCode(best.r)
	bitCount := 0
	l := newLineWalk(best.num, best.den)
	for _, m := range mant {
		bitCount += int(k)
		if uint64(m-best.base-l.next()) >= u {
			bitCount++
		}
	}
	best.bits = float64(bitCount) + 8*float64(varintLen(best.base)+varintLen(best.num)+uvarintLen(uint64(best.den))+uvarintLen(best.r-1))
	return best, true
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
	if hi-lo < 0 || uint64(hi-lo) >= 1<<maxPackedBits || !deltasFit(mant[0], lo, uint64(hi-lo), len(mant)) {
		return packedPlan{}, false
	}
	p := packedPlan{mode: 3, base: lo, r: uint64(hi-lo) + 1}
	k, u := truncCode(p.r)
	bitCount := 0
	for i := 1; i < len(mant); i++ {
		bitCount += int(k)
		if uint64(mant[i]-mant[i-1]-lo) >= u {
			bitCount++
		}
	}
	p.bits = float64(bitCount) + 8*float64(varintLen(mant[0])+varintLen(lo)+uvarintLen(p.r-1))
	return p, true
}

// truncCode returns k = floor(log2 r) and u = 2^(k+1) - r of the truncated binary code of r:
// terms below u take k bits, the others k+1.
func truncCode(r uint64) (uint, uint64) {
	k := uint(bits.Len64(r) - 1)
	return k, uint64(1)<<(k+1) - r
}

// lineWalk yields floor(num*i/den) for i = 0, 1, 2, ... with no division per step: num*i/den
// is dq*i + dr*i/den with num = dq*den + dr, 0 <= dr < den, and the remainder carries at most
// once a step.
type lineWalk struct{ q, r, dq, dr, den int64 }

func newLineWalk(num, den int64) lineWalk {
	dq := floorDiv(num, den)
	return lineWalk{dq: dq, dr: num - dq*den, den: den}
}

// newLineWalkFrom is the walk of floor(num*i/den) for i = from, from+stride, ...; num*from and
// num*stride must fit in an int64.
func newLineWalkFrom(num, den, from, stride int64) lineWalk {
	q := floorDiv(num*from, den)
	dq := floorDiv(num*stride, den)
	return lineWalk{q: q, r: num*from - q*den, dq: dq, dr: num*stride - dq*den, den: den}
}

func (l *lineWalk) next() int64 {
	v := l.q
	l.q += l.dq
	l.r += l.dr
	// carry is -1 when the remainder reached den, else 0: no branch to mispredict.
	carry := (l.den - 1 - l.r) >> 63
	l.q -= carry
	l.r -= l.den & carry
	return v
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

// truncWriter appends terms in the truncated binary code of r, least significant bit first:
// the k-bit parts of all terms, then the extra bits of the terms that have one.
type truncWriter struct {
	b     []byte
	acc   uint64
	nacc  uint
	k     uint
	u     uint64
	extra []uint64 // extra bits, 64 a word, written by finish
	nx    uint
}

func newTruncWriter(b []byte, r uint64, extra []uint64) truncWriter {
	k, u := truncCode(r)
	return truncWriter{b: b, k: k, u: u, extra: extra[:0]}
}

func (w *truncWriter) put(v uint64) {
	if v < w.u {
		w.bits(v, w.k)
		return
	}
	v -= w.u
	w.bits(w.u+v>>1, w.k)
	if w.nx%64 == 0 {
		w.extra = append(w.extra, 0)
	}
	w.extra[len(w.extra)-1] |= (v & 1) << (w.nx % 64)
	w.nx++
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

// finish appends the extra bits and the last byte, and returns the buffer.
func (w *truncWriter) finish() []byte {
	for i := uint(0); i < w.nx; i += 32 {
		n := min(32, w.nx-i)
		w.bits((w.extra[i/64]>>(i%64))&(uint64(1)<<n-1), n)
	}
	if w.nacc > 0 {
		w.b = append(w.b, byte(w.acc))
	}
	return w.b
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
		if den == 0 || den > maxPackedTerm || !lineFits(base, num, int64(den), r1, int(n)) {
			return errCorruptDecimal
		}
		l := newLineWalk(num, int64(den))
		if r1 == 0 {
			// R = 1: no bits, every mantissa on the line (a constant, a constant rate).
			if pos != len(data) {
				return errCorruptDecimal
			}
			for i := range vs {
				vs[i] = float64(base+l.next()) / div
			}
			return nil
		}
		terms := growUint64(it.terms, int(n))
		it.terms = terms
		var ok bool
		if it.pad, ok = readTruncTerms(terms, data, pos, r1+1, it.pad); !ok {
			return errCorruptDecimal
		}
		// lineFits bounds every mantissa: no check per sample. Two walks, of the even and the
		// odd samples, so that each step waits for the one two before it, not one.
		even, odd := newLineWalkFrom(num, int64(den), 0, 2), newLineWalkFrom(num, int64(den), 1, 2)
		i := 0
		for ; i+1 < len(terms); i += 2 {
			vs[i] = float64(base+even.next()+int64(terms[i])) / div
			vs[i+1] = float64(base+odd.next()+int64(terms[i+1])) / div
		}
		if i < len(terms) {
			vs[i] = float64(base+even.next()+int64(terms[i])) / div
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
		if !deltasFit(m, dmin, r1, int(n)) {
			return errCorruptDecimal
		}
		vs[0] = float64(m) / div
		if r1 == 0 {
			// R = 1: no bits, every delta dmin (a constant, a constant rate).
			if pos != len(data) {
				return errCorruptDecimal
			}
			for i := 1; i < len(vs); i++ {
				m += dmin
				vs[i] = float64(m) / div
			}
			return nil
		}
		terms := growUint64(it.terms, int(n)-1)
		it.terms = terms
		var ok bool
		if it.pad, ok = readTruncTerms(terms, data, pos, r1+1, it.pad); !ok {
			return errCorruptDecimal
		}
		for i, x := range terms {
			m += dmin + int64(x)
			vs[i+1] = float64(m) / div
		}
		return nil
	}
}

// lineFits reports whether every mantissa base + floor(num*i/den) + r, 0 <= i < n, 0 <= r <=
// r1, is within ±(2^53-1), with no sum overflowing on the way. The writer uses a line only when
// it fits, so the reader can refuse a chunk that does not and skip a check per sample.
func lineFits(base, num, den int64, r1 uint64, n int) bool {
	if outside(base, maxPackedTerm) || outside(num, maxPackedTerm/int64(n)) || r1 >= 1<<maxPackedBits {
		return false
	}
	last := floorDiv(num*int64(n-1), den) // the line is monotonic: its ends bound it
	lo, hi := base+min(0, last), base+max(0, last)+int64(r1)
	return !outside(lo, maxMantissa-1) && !outside(hi, maxMantissa-1)
}

// deltasFit is lineFits for mode 3: the mantissas from m0 by n-1 steps of dmin + r, 0 <= r <= r1.
func deltasFit(m0, dmin int64, r1 uint64, n int) bool {
	if outside(m0, maxMantissa-1) || outside(dmin, maxPackedTerm/int64(n)) || r1 >= 1<<maxPackedBits {
		return false
	}
	steps := int64(n - 1)
	lo, hi := m0+min(0, dmin*steps), m0+max(0, (dmin+int64(r1))*steps)
	return !outside(lo, maxMantissa-1) && !outside(hi, maxMantissa-1)
}

func growUint64(s []uint64, n int) []uint64 { return slices.Grow(s[:0], n)[:n] }

// readTruncTerms fills dst with the terms truncWriter wrote at data[pos:] in the code of r and
// reports whether they used up data exactly (what is left of the last byte is zero padding).
// The k-bit parts are at fixed places (term i at bit i*k), so no term waits for the one before
// it, and there is no branch on a term's value: with terms nearly random, as the jitter of
// counters is, a branch on x < u would be mispredicted about every other term. The bits are
// read from a copy in pad, zero-padded far enough that every 8-byte load is inside it; pad is
// returned for reuse.
func readTruncTerms(dst []uint64, data []byte, pos int, r uint64, pad []byte) ([]byte, bool) {
	k, u := truncCode(r)
	mask := uint64(1)<<k - 1
	body := data[pos:]
	nbits := uint64(len(body)) * 8
	main := uint64(len(dst)) * uint64(k)
	if main > nbits {
		return pad, false
	}
	// The extra bits start at main and number at most len(dst): past the last one, 8 bytes.
	size := max(uint64(len(body)), (main+uint64(len(dst)))/8+1) + 8
	pad = slices.Grow(pad[:0], int(size))[:size]
	clear(pad[copy(pad, body):])
	extra := main // the next extra bit
	for i := range dst {
		p := uint64(i) * uint64(k)
		x := binary.LittleEndian.Uint64(pad[p>>3:]) >> (p & 7) & mask
		// ge is 1 when x >= u (an extra bit belongs to the term): then x-u is small, else it
		// wrapped around past 2^63.
		ge := (x-u)>>63 ^ 1
		e := binary.LittleEndian.Uint64(pad[extra>>3:]) >> (extra & 7) & 1
		extra += ge
		dst[i] = x + ge*(x-u+e)
	}
	return pad, extra <= nbits && nbits-extra < 8 && binary.LittleEndian.Uint64(pad[extra>>3:])>>(extra&7) == 0
}

// readUvarint reads the uvarint at data[pos:] and returns it with the position after it, or a
// negative position when data ends inside it or it is longer than 64 bits. It is
// binary.Uvarint without the reslicing and the call: the decoding of a chunk is mostly this.
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
