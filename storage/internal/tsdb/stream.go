package tsdb

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// The stream chunk: how the open head of a float series is held in memory, and how a quick
// checkpoint stores it.
//
// A head is appended to, so it cannot take the packed layout, whose terms depend on the whole
// chunk. XOR spends about 30 bits a sample on node-exporter-like values (their binary
// mantissas are long), and the heads were the largest part of the live heap at 100k series.
// This layout streams the decimal chunk's idea: one decimal exponent per chunk, the integer
// mantissas and the timestamps as deltas of deltas, each term in a prefix code of a few widths.
// On the load generator's values it takes about 12.5 bits a sample, 0.41 of XOR2's bytes.
//
// A value that is no short decimal (NaN, stale markers, infinities, -0, more than 15
// significant digits) or a sample with a start timestamp does not fit: chunkBuilder then
// turns the head into an XOR2 chunk with the same samples and goes on with that.
//
// Layout (what Bytes returns, stored after the chunk value's encoding byte and maxt-mint):
//
//	2 bytes  number of samples n, big endian (>= 1)
//	1 byte   decimal exponent e: value = mantissa / 10^e (0..maxDecimalExp)
//	bits, most significant bit of each byte first:
//	  64 bits  the first timestamp, then 64 bits the first mantissa (two's complement)
//	  sample 1: the timestamp's delta, then the mantissa's delta, each a term
//	  sample i >= 2: the timestamp's delta of deltas, then the mantissa's, each a term
//	  the last byte padded with zero bits
//
// A term is a signed integer in a prefix code: '0' is 0; '10' and 7 bits, '110' and 12 bits,
// '1110' and 20 bits, '11110' and 32 bits, '11111' and 64 bits hold it in two's complement in
// that many bits (the shortest that holds it is written). Timestamps and mantissas are summed
// back with wrapping int64 arithmetic, so any int64 timestamps come back exactly.
const encStream chunkenc.Encoding = 0xD3

// streamHeader is the bytes before the bits: n and e.
const streamHeader = 3

// streamWidths are the widths of the terms after their prefixes of 1, 2, 3 and 4 one bits.
var streamWidths = [...]uint8{7, 12, 20, 32}

// streamChunk is a head chunk in the stream layout. It is its own appender, through
// chunkBuilder only (appendFloat), which knows what to do with a value that does not fit.
type streamChunk struct {
	b    []byte
	free uint8 // the unused low bits of b's last byte
	exp  uint8
	// n is the number of samples, as b's header says too. Appending only writes the header:
	// reading it back was a cache miss of its own (the bits are appended lines away).
	n     uint16
	t, dt int64 // the last timestamp and its delta
	m, dm int64 // the last mantissa and its delta
}

var _ chunkenc.Chunk = (*streamChunk)(nil)

// appendFloat appends a sample, raising the chunk's exponent when v needs a larger one, and
// reports whether it could; the chunk is unchanged when it could not.
func (c *streamChunk) appendFloat(t int64, v float64) bool {
	n := int(c.n)
	if n == 0 {
		e, ok := decimalExponent(v, 0)
		return ok && c.start(t, v, e)
	}
	if !fitsExponent(v, int(c.exp)) {
		e, ok := decimalExponent(v, int(c.exp)+1)
		if !ok || !c.widen(e) {
			return false
		}
	}
	m := int64(math.Round(v * pow10[c.exp]))
	dt, dm := t-c.t, m-c.m
	if n == 1 {
		c.writeTerm(dt)
		c.writeTerm(dm)
	} else {
		c.writeTerm(dt - c.dt)
		c.writeTerm(dm - c.dm)
	}
	c.t, c.dt, c.m, c.dm = t, dt, m, dm
	c.n++
	binary.BigEndian.PutUint16(c.b, c.n)
	return true
}

// start makes the chunk one of the single sample (t, v) at exponent e; false when v does not
// come back bit for bit at e.
func (c *streamChunk) start(t int64, v float64, e int) bool {
	if !fitsExponent(v, e) {
		return false
	}
	if c.b == nil {
		c.b = make([]byte, 0, 32)
	}
	c.b = append(c.b[:0], 0, 1, byte(e))
	c.free, c.exp, c.n = 0, uint8(e), 1
	c.t, c.m = t, int64(math.Round(v*pow10[e]))
	c.dt, c.dm = 0, 0
	c.writeBits(uint64(c.t), 64)
	c.writeBits(uint64(c.m), 64)
	return true
}

// widen rewrites the chunk with exponent e, larger than its own; false (and the chunk
// unchanged) when a value already in it does not come back bit for bit at e.
func (c *streamChunk) widen(e int) bool {
	var it decimalIterator
	if it.reset(encStream, 0, c.b); it.err != nil {
		return false
	}
	for _, v := range it.vs {
		if !fitsExponent(v, e) {
			return false
		}
	}
	// The bytes are reused: it.ts and it.vs hold the samples already.
	nc := streamChunk{b: c.b[:0]}
	nc.start(it.ts[0], it.vs[0], e)
	for i := 1; i < len(it.ts); i++ {
		nc.appendFloat(it.ts[i], it.vs[i]) // fits: e holds every value
	}
	*c = nc
	return true
}

// writeTerm writes v in the prefix code.
func (c *streamChunk) writeTerm(v int64) {
	if v == 0 {
		c.writeBits(0, 1)
		return
	}
	for i, w := range streamWidths {
		if lo, hi := -int64(1)<<(w-1), int64(1)<<(w-1)-1; v >= lo && v <= hi {
			// i+1 one bits, a zero bit, then the w low bits of v.
			prefix := uint64(1)<<(i+2) - 2
			c.writeBits(prefix<<w|uint64(v)&(uint64(1)<<w-1), i+2+int(w))
			return
		}
	}
	c.writeBits(0x1f, 5)
	c.writeBits(uint64(v), 64)
}

// writeBits appends the low nbits (1..64) of u, most significant first.
func (c *streamChunk) writeBits(u uint64, nbits int) {
	if nbits < 64 {
		u &= uint64(1)<<nbits - 1
	}
	for nbits > 0 {
		if c.free == 0 {
			if len(c.b) == cap(c.b) {
				c.b = growStream(c.b)
			}
			c.b = append(c.b, 0)
			c.free = 8
		}
		k := min(nbits, int(c.free))
		// The top k of the remaining bits, into the top k free bits of the last byte.
		bits := byte(u >> (nbits - k) & (uint64(1)<<k - 1))
		c.b[len(c.b)-1] |= bits << (int(c.free) - k)
		c.free -= uint8(k)
		nbits -= k
	}
}

// growStream returns b with room for about a quarter more bytes (8 at least). append doubles a
// small slice: heads are most of the store's memory and are cut at 120 samples, about 210
// bytes, so a doubled head spent a third of its bytes on room it never used (at 100 samples,
// 260 bytes held for 177). Appending to nil grows to the allocator's size class at or above
// what is asked, so the room is used.
func growStream(b []byte) []byte {
	nb := append([]byte(nil), make([]byte, len(b)+len(b)/4+8)...)
	return nb[:copy(nb, b)]
}

// Bytes returns the chunk's bytes: a complete chunk at any time, so that a query may copy them
// and a checkpoint store them between two appends.
func (c *streamChunk) Bytes() []byte { return c.b }

func (c *streamChunk) Encoding() chunkenc.Encoding { return encStream }

func (c *streamChunk) NumSamples() int { return int(c.n) }

var errStreamAppender = errors.New("stream chunks are appended to through chunkBuilder")

// Appender is refused: a value that does not fit would have nowhere to go.
func (c *streamChunk) Appender() (chunkenc.Appender, error) { return nil, errStreamAppender }

func (c *streamChunk) Iterator(reuse chunkenc.Iterator) chunkenc.Iterator {
	it, ok := reuse.(*decimalIterator)
	if !ok {
		it = &decimalIterator{}
	}
	it.reset(encStream, 0, c.b)
	return it
}

func (c *streamChunk) Compact() {}

func (c *streamChunk) Reset(stream []byte) {
	*c = streamChunk{}
	var it decimalIterator
	if it.reset(encStream, 0, stream); it.err != nil {
		return
	}
	var nc streamChunk
	if !nc.start(it.ts[0], it.vs[0], int(stream[2])) {
		return
	}
	for i := 1; i < len(it.ts); i++ {
		if !nc.appendFloat(it.ts[i], it.vs[i]) {
			return
		}
	}
	*c = nc
}

// decodeStream fills it.ts and it.vs from a stream chunk's bytes.
func (it *decimalIterator) decodeStream(_ int64, data []byte) error {
	ts, mant, err := decodeStreamInts(it.ts, it.mant, data)
	it.ts, it.mant = ts, mant
	if err != nil {
		return err
	}
	vs := growFloat64(it.vs, len(mant))
	it.vs = vs
	div := pow10[data[2]]
	for i, m := range mant {
		// Division, as in readVarintTerms: the encoder checked that it gives the value back.
		vs[i] = float64(m) / div
	}
	return nil
}

// decodeStreamInts decodes a stream chunk's timestamps and mantissas into ts and mant, grown as
// needed.
func decodeStreamInts(ts, mant []int64, data []byte) ([]int64, []int64, error) {
	if len(data) < streamHeader+16 {
		return ts[:0], mant[:0], errCorruptDecimal
	}
	n, exp := int(binary.BigEndian.Uint16(data)), int(data[2])
	// A sample takes at least 2 bits after the first's 128.
	if n == 0 || exp > maxDecimalExp || (n-1)*2 > 8*(len(data)-streamHeader-16) {
		return ts[:0], mant[:0], errCorruptDecimal
	}
	ts, mant = growInt64(ts, n), growInt64(mant, n)
	r := bitReader{data: data[streamHeader:]}
	t, m := int64(r.read(64)), int64(r.read(64))
	ts[0], mant[0] = t, m
	var dt, dm int64
	for i := 1; i < n; i++ {
		a, b := r.term(), r.term()
		if i == 1 {
			dt, dm = a, b
		} else {
			dt, dm = dt+a, dm+b
		}
		t, m = t+dt, m+dm
		ts[i], mant[i] = t, m
	}
	if r.overrun() {
		return ts[:0], mant[:0], errCorruptDecimal
	}
	return ts, mant, nil
}

// bitReader reads bits most significant first; past the end it reads zero bits, and
// overrun tells whether it did.
type bitReader struct {
	data []byte
	pos  int // in bits
}

func (r *bitReader) overrun() bool { return r.pos > 8*len(r.data) }

// peek returns the 64 bits from pos on (zero bits past the end), of which the first 57 at
// least are whole.
func (r *bitReader) peek() uint64 {
	i := r.pos >> 3
	var w uint64
	if i+8 <= len(r.data) {
		w = binary.BigEndian.Uint64(r.data[i:])
	} else {
		var buf [8]byte
		if i < len(r.data) {
			copy(buf[:], r.data[i:])
		}
		w = binary.BigEndian.Uint64(buf[:])
	}
	return w << (r.pos & 7)
}

func (r *bitReader) skip(n int) { r.pos += n }

// read returns the next nbits (1..64).
func (r *bitReader) read(nbits int) uint64 {
	if nbits > 56 {
		hi := r.read(nbits - 32)
		return hi<<32 | r.read(32)
	}
	u := r.peek() >> (64 - nbits)
	r.skip(nbits)
	return u
}

// term reads one term of the prefix code.
func (r *bitReader) term() int64 {
	w := r.peek()
	ones := bits.LeadingZeros64(^w)
	switch {
	case ones == 0:
		r.skip(1)
		return 0
	case ones > len(streamWidths):
		r.skip(len(streamWidths) + 1)
		return int64(r.read(64))
	}
	width := int(streamWidths[ones-1])
	// The prefix (ones and a zero) and the term together are at most 5+32 bits: in w.
	u := w << (ones + 1) >> (64 - width)
	r.skip(ones + 1 + width)
	return int64(u<<(64-width)) >> (64 - width) // sign extension
}
