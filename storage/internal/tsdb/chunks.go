package tsdb

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// samplesPerChunk is where float chunks are cut, as in Prometheus's head: past ~120 samples the
// XOR encoding gains little and a query that needs one sample decodes more.
const samplesPerChunk = 120

// sample is one value of any kind. Exactly one of f, h, fh is meaningful: fh if non-nil, else h
// if non-nil, else f.
type sample struct {
	st int64 // start timestamp; 0 when unknown
	t  int64
	f  float64
	h  *histogram.Histogram
	fh *histogram.FloatHistogram
}

func (s sample) valueType() chunkenc.ValueType {
	switch {
	case s.fh != nil:
		return chunkenc.ValFloatHistogram
	case s.h != nil:
		return chunkenc.ValHistogram
	default:
		return chunkenc.ValFloat
	}
}

// sameValue reports whether two samples at the same timestamp carry the same value, which makes
// the second one a harmless duplicate rather than a conflict.
func (s sample) sameValue(o sample) bool {
	switch {
	case s.fh != nil:
		return o.fh != nil && s.fh.Equals(o.fh)
	case s.h != nil:
		return o.h != nil && s.h.Equals(o.h)
	default:
		if o.h != nil || o.fh != nil {
			return false
		}
		return math.Float64bits(s.f) == math.Float64bits(o.f) ||
			(value.IsStaleNaN(s.f) && value.IsStaleNaN(o.f))
	}
}

func isFloatChunk(c chunkenc.Chunk) bool {
	e := c.Encoding()
	return e == chunkenc.EncXOR || e == chunkenc.EncXOR2 || e == encStream
}

// chunkBuilder holds one chunk being appended to: the head chunk of a series, or a chunk being
// rebuilt when out-of-order samples are merged in.
//
// A float head is a stream chunk held in the builder itself (streaming), which is held in the
// series: an object and a pointer of its own per series were a fifth of the heap's objects at
// 100k series, and a cache miss per append. Other chunks (XOR2, histograms) are in other.
// Nothing keeps a pointer to stream: chunk() hands one out for the moment, and a builder may be
// copied (a reopened head is built apart, then stored in its series).
type chunkBuilder struct {
	part       int64
	mint, maxt int64
	stream     streamChunk // the open chunk when streaming
	other      *otherChunk // the open chunk when it is not a stream chunk; nil otherwise
	streaming  bool        // stream is the open chunk
	dirty      bool        // holds samples that the stored chunk (if any) lacks
	// quickStored: the stored copy of this open float head is in the head's own layout, as
	// a periodic checkpoint writes it, not packed. Packing is most of a checkpoint's CPU, and a
	// head is usually stored again at the next checkpoint or cut; a clean close and head
	// collection pack the heads that stay (see packQuickHeadsLocked). Set and cleared under
	// writeMu and headMu.
	quickStored bool
	// floats counts the samples of a float chunk, so that full need not read the chunk's header
	// (a cache miss per append at 100k series); 0 for histogram chunks.
	floats int32
}

// otherChunk is an open chunk of chunkenc's and its appender.
type otherChunk struct {
	chunk chunkenc.Chunk
	app   chunkenc.Appender
}

// open reports whether a chunk is open.
func (c *chunkBuilder) open() bool { return c.streaming || c.other != nil }

// chunk is the open chunk, nil when none is. Its stream chunk is c's own: the caller must not
// keep it past a change of c.
func (c *chunkBuilder) chunk() chunkenc.Chunk {
	switch {
	case c.streaming:
		return &c.stream
	case c.other != nil:
		return c.other.chunk
	}
	return nil
}

// setOther makes chk, with its appender app, the open chunk.
func (c *chunkBuilder) setOther(chk chunkenc.Chunk, app chunkenc.Appender) {
	c.streaming, c.stream = false, streamChunk{}
	c.other = &otherChunk{chunk: chk, app: app}
}

// full reports whether the next sample must start a new chunk.
func (c *chunkBuilder) full() bool {
	if c.floats > 0 {
		return c.floats >= samplesPerChunk
	}
	chk := c.chunk()
	if isFloatChunk(chk) {
		return chk.NumSamples() >= samplesPerChunk
	}
	return len(chk.Bytes()) >= chunkenc.TargetBytesPerHistogramChunk && chk.NumSamples() >= 10
}

// append adds s, which must be later than every sample of the open chunk. Before it leaves a
// chunk behind, it calls emit with the builder so the caller can write that chunk out.
func (c *chunkBuilder) append(s sample, part int64, emit func(*chunkBuilder)) error {
	vt := s.valueType()
	// The ST-capable encodings cost one header byte and no bits per sample when no start
	// timestamps are given, so they are used always.
	enc := vt.ChunkEncoding(true, true)
	var prev chunkenc.Appender
	if !c.open() || c.part != part || !c.takes(vt, enc) || c.full() {
		if c.other != nil && c.other.chunk.Encoding() == enc {
			prev = c.other.app
		}
		if c.open() {
			if c.dirty {
				emit(c)
			}
		}
		*c = chunkBuilder{part: part, mint: s.t, maxt: s.t}
		if vt == chunkenc.ValFloat && s.st == 0 {
			// Float heads start in the stream layout (stream.go); appendFloat turns one
			// into XOR2 when a sample does not fit it.
			c.streaming = true
		} else {
			chk, err := chunkenc.NewEmptyChunk(enc)
			if err != nil {
				return err
			}
			app, err := chk.Appender()
			if err != nil {
				return err
			}
			c.setOther(chk, app)
		}
	}
	switch vt {
	case chunkenc.ValFloat:
		if err := c.appendFloat(s); err != nil {
			return err
		}
	case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
		var (
			newChunk chunkenc.Chunk
			recoded  bool
			app      chunkenc.Appender
			err      error
		)
		if vt == chunkenc.ValHistogram {
			newChunk, recoded, app, err = c.other.app.AppendHistogram(prev, s.st, s.t, s.h, false)
		} else {
			newChunk, recoded, app, err = c.other.app.AppendFloatHistogram(prev, s.st, s.t, s.fh, false)
		}
		if err != nil {
			return fmt.Errorf("append histogram at %d: %w", s.t, err)
		}
		if newChunk != nil && !recoded {
			// The appender could not extend the chunk (counter reset, schema change): the
			// old chunk is finished and the sample starts the new one.
			if c.dirty {
				emit(c)
			}
			*c = chunkBuilder{part: part, mint: s.t}
			c.setOther(newChunk, app)
		} else {
			if newChunk != nil {
				c.other.chunk = newChunk // recoded in place: same chunk, same key
			}
			c.other.app = app
		}
	}
	c.maxt = s.t
	c.dirty = true
	return nil
}

// takes reports whether the open chunk takes a sample of type vt, whose own encoding is enc:
// a float sample goes on in either of the float heads this package opens (stream or XOR2).
func (c *chunkBuilder) takes(vt chunkenc.ValueType, enc chunkenc.Encoding) bool {
	e := c.chunk().Encoding()
	if vt == chunkenc.ValFloat {
		return e == encStream || e == chunkenc.EncXOR2
	}
	return e == enc
}

// appendFloat appends a float sample to the open float chunk. A stream chunk takes it when it
// is a short decimal without a start timestamp; otherwise the chunk is rewritten as XOR2 with
// the same samples, which takes any float.
func (c *chunkBuilder) appendFloat(s sample) error {
	if c.streaming {
		sc := &c.stream
		if s.st == 0 && sc.appendFloat(s.t, s.f) {
			c.floats++
			return nil
		}
		chk := chunkenc.NewXOR2Chunk()
		app, err := chk.Appender()
		if err != nil {
			return err
		}
		if sc.NumSamples() > 0 {
			it := sc.Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				t, v := it.At()
				app.Append(0, t, v)
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
		c.setOther(chk, app)
	}
	c.other.app.Append(s.st, s.t, s.f)
	c.floats++
	return nil
}

// encodeChunkValue is the value stored under a chunk key: encoding, maxt-mint, chunk bytes.
func encodeChunkValue(b []byte, c *chunkBuilder) []byte {
	chk := c.chunk()
	b = append(b, byte(chk.Encoding()))
	b = binary.AppendUvarint(b, uint64(c.maxt-c.mint))
	return append(b, chk.Bytes()...)
}

// encodeStoredChunkValue is encodeChunkValue for a float chunk written to Pebble: one of short
// decimals takes the packed layout (packed.go), whether it was cut or is an open head that a
// checkpoint packs. The head in memory is a stream chunk (or XOR2); a stored packed (or older
// decimal) head is reopened as a stream chunk (builderFromDecimal), so the layout on disk never
// constrains appending.
func encodeStoredChunkValue(b []byte, c *chunkBuilder, sc *decimalScratch) []byte {
	if chk := c.chunk(); isFloatChunk(chk) {
		start := len(b)
		b = append(b, byte(encPacked))
		b = binary.AppendUvarint(b, uint64(c.maxt-c.mint))
		if out, ok := appendPackedChunk(b, chk, sc); ok {
			return out
		}
		b = b[:start]
	}
	return encodeChunkValue(b, c)
}

// isDecimal reports whether enc is one of our own float layouts, read by decimalIterator.
func isDecimal(enc chunkenc.Encoding) bool {
	return enc == encDecimal || enc == encPacked || enc == encStream
}

// storedChunk is a chunk read back from Pebble. data is owned by the storedChunk.
type storedChunk struct {
	mint, maxt int64
	enc        chunkenc.Encoding
	data       []byte
}

func decodeChunkValue(mint int64, v []byte, copyData bool) (storedChunk, error) {
	if len(v) < 2 {
		return storedChunk{}, fmt.Errorf("chunk value of %d bytes", len(v))
	}
	enc := chunkenc.Encoding(v[0])
	if !isDecimal(enc) && !chunkenc.IsValidEncoding(enc) {
		return storedChunk{}, fmt.Errorf("chunk encoding %d unknown", v[0])
	}
	d, w := binary.Uvarint(v[1:])
	if w <= 0 {
		return storedChunk{}, fmt.Errorf("chunk value has a corrupt max time")
	}
	data := v[1+w:]
	if copyData {
		data = append([]byte(nil), data...)
	}
	return storedChunk{mint: mint, maxt: mint + int64(d), enc: enc, data: data}, nil
}

// iterator returns an iterator over the chunk's samples, reusing reuse when it is of the
// chunk's kind.
func (c storedChunk) iterator(reuse chunkenc.Iterator) (chunkenc.Iterator, error) {
	if isDecimal(c.enc) {
		it, ok := reuse.(*decimalIterator)
		if !ok {
			it = &decimalIterator{}
		}
		it.reset(c.enc, c.mint, c.data)
		return it, nil
	}
	chk, err := chunkenc.FromData(c.enc, c.data)
	if err != nil {
		return nil, err
	}
	return chk.Iterator(reuse), nil
}

// samples decodes every sample of the chunk, copying histograms.
func (c storedChunk) samples(dst []sample) ([]sample, error) {
	it, err := c.iterator(nil)
	if err != nil {
		return dst, err
	}
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			t, f := it.At()
			dst = append(dst, sample{st: it.AtST(), t: t, f: f})
		case chunkenc.ValHistogram:
			t, h := it.AtHistogram(nil)
			dst = append(dst, sample{st: it.AtST(), t: t, h: h})
		case chunkenc.ValFloatHistogram:
			t, fh := it.AtFloatHistogram(nil)
			dst = append(dst, sample{st: it.AtST(), t: t, fh: fh})
		}
	}
	return dst, it.Err()
}

// builderFromStored reopens a stored chunk for appending, and returns its last sample.
func builderFromStored(part int64, c storedChunk) (chunkBuilder, sample, error) {
	if isDecimal(c.enc) {
		return builderFromDecimal(part, c)
	}
	chk, err := chunkenc.FromData(c.enc, c.data)
	if err != nil {
		return chunkBuilder{}, sample{}, err
	}
	var last sample
	it := chk.Iterator(nil)
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		switch vt {
		case chunkenc.ValFloat:
			last.t, last.f = it.At()
		case chunkenc.ValHistogram:
			last.t, last.h = it.AtHistogram(nil)
		case chunkenc.ValFloatHistogram:
			last.t, last.fh = it.AtFloatHistogram(nil)
		}
	}
	if err := it.Err(); err != nil {
		return chunkBuilder{}, sample{}, err
	}
	app, err := chk.Appender()
	if err != nil {
		return chunkBuilder{}, sample{}, err
	}
	b := chunkBuilder{part: part, mint: c.mint, maxt: c.maxt}
	b.setOther(chk, app)
	if isFloatChunk(chk) {
		b.floats = int32(chk.NumSamples())
		b.quickStored = true // a checkpoint's quick copy, or floats that do not pack
	}
	return b, last, nil
}

// builderFromDecimal reopens one of our own float layouts (decimal, packed, stream) as a stream
// head with the same samples. It is not dirty: the stored chunk holds them. Appending to it
// rewrites the chunk under the same key, and a later cut writes it packed again. A stream chunk
// stored is a checkpoint's quick copy of a head, which a clean close packs (quickStored).
func builderFromDecimal(part int64, c storedChunk) (chunkBuilder, sample, error) {
	var it decimalIterator
	it.reset(c.enc, c.mint, c.data)
	if it.err != nil {
		return chunkBuilder{}, sample{}, it.err
	}
	if len(it.ts) == 0 {
		return chunkBuilder{}, sample{}, errCorruptDecimal
	}
	b := chunkBuilder{part: part, mint: c.mint, maxt: c.maxt, streaming: true, quickStored: c.enc == encStream}
	for i := range it.ts {
		// Every value of these layouts is a short decimal: the stream chunk takes them all, or
		// appendFloat moves them to XOR2.
		if err := b.appendFloat(sample{t: it.ts[i], f: it.vs[i]}); err != nil {
			return chunkBuilder{}, sample{}, err
		}
	}
	last := sample{t: it.ts[len(it.ts)-1], f: it.vs[len(it.vs)-1]}
	return b, last, nil
}
