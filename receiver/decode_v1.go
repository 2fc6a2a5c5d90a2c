package receiver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unsafe"

	"github.com/prometheus/prometheus/prompb"
)

// The remote write 1.0 request is decoded by hand rather than by prompb's generated Unmarshal,
// which allocates a slice per series and a string per label name and value. Here a label's name
// or value is the string of the previous series' label at the same place when the bytes are the
// same (senders batch the series of one scrape together: the names, job, instance and often the
// metric name repeat), and otherwise a copy in the request's label buffer (labelStrings); the
// per-series structure lives in flat slices the converter reuses from request to request. A
// steady stream of known series allocates no more than the label bytes that change from series
// to series.
//
// It accepts exactly what prompb's Unmarshal accepts (FuzzDecodeV1 compares them): the same wire
// types per field, unknown fields and groups skipped, the last value of a repeated scalar kept.
// Histograms, exemplars and metadata are rare and are handed to prompb's own Unmarshal.

// Field numbers of prometheus.WriteRequest, TimeSeries, Label and Sample (prompb/remote.proto,
// prompb/types.proto).
const (
	fieldWriteTimeseries = 1
	fieldWriteMetadata   = 3

	fieldSeriesLabels     = 1
	fieldSeriesSamples    = 2
	fieldSeriesExemplars  = 3
	fieldSeriesHistograms = 4

	fieldLabelName  = 1
	fieldLabelValue = 2

	fieldSampleValue     = 1
	fieldSampleTimestamp = 2
	// Remote write 2.0's Sample only (io/prometheus/write/v2/types.proto): the 1.0 decoder
	// skips the field as unknown, as prompb does.
	fieldSampleStartTimestamp = 3
)

const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

var (
	errVarintOverflow   = errors.New("proto: integer overflow")
	errNegativeLength   = errors.New("proto: negative length found during unmarshaling")
	errUnexpectedEndGrp = errors.New("proto: unexpected end of group")
)

// label is one label as sent: strings of the request's label buffer (or 2.0 symbols).
type label struct{ name, value string }

// rawSeries is one decoded time series: ranges into the flat slices of v1Request.
type rawSeries struct {
	labels, samples, histograms, exemplars span
	// ascii: every byte of the labels' encoding is below 0x80, so every name and value is
	// ASCII, valid UTF-8 without a closer look (validate). Most series are; the others are
	// checked string by string.
	ascii bool
}

type span struct{ lo, hi int32 }

// v1Request is a decoded prometheus.WriteRequest. Its slices are reused by the next request
// decoded into it; the strings belong to the request's label buffer and stay valid as long as
// anyone refers to them. Between requests the label slice still refers to the last buffer, so a
// pooled converter keeps at most one request's label bytes alive; clearing it per request would
// cost more than that memory.
type v1Request struct {
	series     []rawSeries
	labels     []label
	samples    []sampleV
	histograms []prompb.Histogram
	exemplars  []prompb.Exemplar
	metadata   []prompb.MetricMetadata
	strs       labelStrings
}

// labelStrings makes the label strings of one request.
//
// Invariant: a string it returns is never written to again. The copies live in a strings.Builder,
// which only appends: when it grows it moves on to a larger array and the strings made before keep
// the old one alive. reset starts a new buffer for the next request; the strings of the last one
// stay valid for whoever holds them (a processor that keeps pipeline data, a cache).
type labelStrings struct {
	sb strings.Builder
}

// reset starts the buffer of a request whose body is n bytes long. The first array is an eighth
// of the body, which usually holds the label bytes that differ from the previous series' (a tenth
// of the body for node-exporter-like series sent host by host, BenchmarkDecodeV1).
func (ls *labelStrings) reset(n int) {
	ls.sb.Reset()
	ls.sb.Grow(max(n/8, 64))
}

// make returns the string of b: same, when it holds the same bytes (the label at the same place
// in the previous series), else a copy in the buffer.
func (ls *labelStrings) make(b []byte, same string) string {
	if string(b) == same { // compared without a conversion
		return same
	}
	start := ls.sb.Len()
	ls.sb.Write(b)
	return ls.sb.String()[start:]
}

func (r *v1Request) reset() {
	if cap(r.series) > maxPooledSeries || cap(r.labels) > maxPooledItems || cap(r.samples) > maxPooledItems {
		*r = v1Request{} // see maxPooledSeries
		return
	}
	r.series = r.series[:0]
	r.labels = r.labels[:0]
	r.samples = r.samples[:0]
	// Histograms, exemplars and metadata hold pointers into earlier requests: drop them.
	clear(r.histograms)
	r.histograms = r.histograms[:0]
	clear(r.exemplars)
	r.exemplars = r.exemplars[:0]
	clear(r.metadata)
	r.metadata = r.metadata[:0]
}

// pbuf reads protobuf wire format from b.
type pbuf struct {
	b []byte
	i int
}

func (p *pbuf) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, errVarintOverflow
		}
		if p.i >= len(p.b) {
			return 0, io.ErrUnexpectedEOF
		}
		c := p.b[p.i]
		p.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, nil
		}
	}
}

// tag reads a field key. Like the generated code it refuses an end-group key and field numbers
// that are not positive as int32.
func (p *pbuf) tag(msg string) (field int32, wire int, err error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	field, wire = int32(v>>3), int(v&7)
	if wire == wireEndGroup {
		return 0, 0, fmt.Errorf("proto: %s: wiretype end group for non-group", msg)
	}
	if field <= 0 {
		return 0, 0, fmt.Errorf("proto: %s: illegal tag %d (wire type %d)", msg, field, v)
	}
	return field, wire, nil
}

// sub reads a length-delimited field and returns its bounds.
func (p *pbuf) sub() (lo, hi int, err error) {
	v, err := p.varint()
	if err != nil {
		return 0, 0, err
	}
	n := int(v)
	if n < 0 {
		return 0, 0, errNegativeLength
	}
	lo, hi = p.i, p.i+n
	if hi < 0 {
		return 0, 0, errNegativeLength
	}
	if hi > len(p.b) {
		return 0, 0, io.ErrUnexpectedEOF
	}
	p.i = hi
	return lo, hi, nil
}

// skip passes over a field of an unknown number whose key was just read (at start), groups
// included, as the generated code's skipTypes does.
func (p *pbuf) skip(wire int) error {
	depth := 0
	for {
		switch wire {
		case wireVarint:
			if _, err := p.varint(); err != nil {
				return err
			}
		case wireFixed64:
			p.i += 8
		case wireBytes:
			v, err := p.varint()
			if err != nil {
				return err
			}
			if int(v) < 0 {
				return errNegativeLength
			}
			p.i += int(v)
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return errUnexpectedEndGrp
			}
			depth--
		case wireFixed32:
			p.i += 4
		default:
			return fmt.Errorf("proto: illegal wireType %d", wire)
		}
		if p.i < 0 {
			return errNegativeLength
		}
		if p.i > len(p.b) {
			return io.ErrUnexpectedEOF
		}
		if depth == 0 {
			return nil
		}
		v, err := p.varint()
		if err != nil {
			return err
		}
		wire = int(v & 7)
	}
}

// message reads a length-delimited field whose key, of wire type wire, was just read: its bounds,
// or the generated code's error for another wire type (name is the field's).
func (p *pbuf) message(wire int, name string) (lo, hi int, err error) {
	if wire != wireBytes {
		return 0, 0, wrongWire(wire, name)
	}
	return p.sub()
}

// appendDecoded appends a zero T to s and decodes b into it with T's generated Unmarshal: the
// messages that are rare (histograms, exemplars, metadata) and not worth a decoder of our own.
func appendDecoded[T any, PT interface {
	*T
	Unmarshal([]byte) error
}](s []T, b []byte) ([]T, error) {
	s = append(s, *new(T))
	return s, PT(&s[len(s)-1]).Unmarshal(b)
}

func wrongWire(wire int, field string) error {
	return fmt.Errorf("proto: wrong wireType = %d for field %s", wire, field)
}

// decodeV1 decodes a prometheus.WriteRequest from body into r. No string of r refers to body,
// which the caller may reuse.
func decodeV1(r *v1Request, body []byte) error {
	r.reset()
	r.strs.reset(len(body))
	p := pbuf{b: body}
	for p.i < len(p.b) {
		field, wire, err := p.tag("WriteRequest")
		if err != nil {
			return err
		}
		switch field {
		case fieldWriteTimeseries:
			lo, hi, err := p.message(wire, "Timeseries")
			if err != nil {
				return err
			}
			if err := r.decodeSeries(body[:hi], lo); err != nil {
				return err
			}
		case fieldWriteMetadata:
			lo, hi, err := p.message(wire, "Metadata")
			if err != nil {
				return err
			}
			if r.metadata, err = appendDecoded(r.metadata, body[lo:hi]); err != nil {
				return err
			}
		default:
			if err := p.skip(wire); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeSeries decodes the TimeSeries in b[start:].
func (r *v1Request) decodeSeries(b []byte, start int) error {
	s := rawSeries{
		labels:     span{int32(len(r.labels)), int32(len(r.labels))},
		samples:    span{int32(len(r.samples)), int32(len(r.samples))},
		histograms: span{int32(len(r.histograms)), int32(len(r.histograms))},
		exemplars:  span{int32(len(r.exemplars)), int32(len(r.exemplars))},
	}
	var high uint64 // the bits of the label bytes above 0x7f
	// prev holds the labels of the previous series, whose strings a label at the same place
	// reuses when its bytes are the same.
	var prev []label
	if n := len(r.series); n > 0 {
		prev = r.labels[r.series[n-1].labels.lo:r.series[n-1].labels.hi]
	}
	p := pbuf{b: b, i: start}
	for p.i < len(p.b) {
		field, wire, err := p.tag("TimeSeries")
		if err != nil {
			return err
		}
		switch field {
		case fieldSeriesLabels:
			lo, hi, err := p.message(wire, "Labels")
			if err != nil {
				return err
			}
			var same label
			if k := len(r.labels) - int(s.labels.lo); k < len(prev) {
				same = prev[k]
			}
			l, err := decodeLabel(b[:hi], lo, &r.strs, same)
			if err != nil {
				return err
			}
			high |= highBits(b[lo:hi])
			r.labels = append(r.labels, l)
		case fieldSeriesSamples:
			lo, hi, err := p.message(wire, "Samples")
			if err != nil {
				return err
			}
			smp, err := decodeSample(b[:hi], lo, false)
			if err != nil {
				return err
			}
			r.samples = append(r.samples, smp)
		case fieldSeriesExemplars:
			lo, hi, err := p.message(wire, "Exemplars")
			if err != nil {
				return err
			}
			if r.exemplars, err = appendDecoded(r.exemplars, b[lo:hi]); err != nil {
				return err
			}
		case fieldSeriesHistograms:
			lo, hi, err := p.message(wire, "Histograms")
			if err != nil {
				return err
			}
			if r.histograms, err = appendDecoded(r.histograms, b[lo:hi]); err != nil {
				return err
			}
		default:
			if err := p.skip(wire); err != nil {
				return err
			}
		}
	}
	s.labels.hi = int32(len(r.labels))
	s.samples.hi = int32(len(r.samples))
	s.histograms.hi = int32(len(r.histograms))
	s.exemplars.hi = int32(len(r.exemplars))
	s.ascii = high == 0
	r.series = append(r.series, s)
	return nil
}

// highBits returns the bits above 0x7f of the bytes of b, or-ed together eight at a time: 0 when
// b is ASCII, so valid UTF-8 without utf8.ValidString, which reads a byte at a time.
func highBits(b []byte) uint64 {
	var x uint64
	for len(b) >= 8 {
		x |= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		x |= uint64(c)
	}
	return x & 0x8080808080808080
}

// highBitsString is highBits of the bytes of s, read in place (a type parameter for both made
// the decoder's loop 15 % slower: BenchmarkDecodeV1).
func highBitsString(s string) uint64 {
	return highBits(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// decodeLabel decodes the Label in b[start:]; a name or value with the bytes of same's is same's
// string (see labelStrings.make).
func decodeLabel(b []byte, start int, ls *labelStrings, same label) (label, error) {
	// The encoding every sender uses: the name, then the value unless it is empty, each
	// shorter than 128 bytes (a one-byte length), nothing else. Read without the general loop;
	// anything else (other order, repeated or unknown fields, longer strings) takes the loop,
	// which gives the same label for this encoding.
	if i := start; i+2 <= len(b) && b[i] == fieldLabelName<<3|wireBytes && b[i+1] < 0x80 {
		j := i + 2 + int(b[i+1])
		switch {
		case j == len(b):
			return label{name: ls.make(b[i+2:j], same.name)}, nil
		case j+2 <= len(b) && b[j] == fieldLabelValue<<3|wireBytes && b[j+1] < 0x80 && j+2+int(b[j+1]) == len(b):
			return label{name: ls.make(b[i+2:j], same.name), value: ls.make(b[j+2:], same.value)}, nil
		}
	}
	var l label
	p := pbuf{b: b, i: start}
	for p.i < len(p.b) {
		field, wire, err := p.tag("Label")
		if err != nil {
			return l, err
		}
		switch field {
		case fieldLabelName, fieldLabelValue:
			if wire != wireBytes {
				if field == fieldLabelName {
					return l, wrongWire(wire, "Name")
				}
				return l, wrongWire(wire, "Value")
			}
			lo, hi, err := p.sub()
			if err != nil {
				return l, err
			}
			if field == fieldLabelName {
				l.name = ls.make(b[lo:hi], same.name)
			} else {
				l.value = ls.make(b[lo:hi], same.value)
			}
		default:
			if err := p.skip(wire); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// decodeSample decodes the Sample in b[start:]: 1.0's, or 2.0's with its start timestamp when v2.
func decodeSample(b []byte, start int, v2 bool) (sampleV, error) {
	// The usual encoding: the value, then the timestamp unless it is 0, nothing else (see
	// decodeLabel).
	if i := start; i+9 <= len(b) && b[i] == fieldSampleValue<<3|wireFixed64 {
		v := math.Float64frombits(binary.LittleEndian.Uint64(b[i+1:]))
		if i+9 == len(b) {
			return sampleV{v: v}, nil
		}
		if b[i+9] == fieldSampleTimestamp<<3|wireVarint {
			p := pbuf{b: b, i: i + 10}
			if t, err := p.varint(); err == nil && p.i == len(b) {
				return sampleV{t: int64(t), v: v}, nil
			}
		}
	}
	var s sampleV
	p := pbuf{b: b, i: start}
	for p.i < len(p.b) {
		field, wire, err := p.tag("Sample")
		if err != nil {
			return s, err
		}
		switch field {
		case fieldSampleValue:
			if wire != wireFixed64 {
				return s, wrongWire(wire, "Value")
			}
			if p.i+8 > len(p.b) {
				return s, io.ErrUnexpectedEOF
			}
			s.v = math.Float64frombits(binary.LittleEndian.Uint64(p.b[p.i:]))
			p.i += 8
		case fieldSampleTimestamp:
			if wire != wireVarint {
				return s, wrongWire(wire, "Timestamp")
			}
			v, err := p.varint()
			if err != nil {
				return s, err
			}
			s.t = int64(v)
		case fieldSampleStartTimestamp:
			if !v2 {
				if err := p.skip(wire); err != nil {
					return s, err
				}
				continue
			}
			if wire != wireVarint {
				return s, wrongWire(wire, "StartTimestamp")
			}
			v, err := p.varint()
			if err != nil {
				return s, err
			}
			s.st = int64(v)
		default:
			if err := p.skip(wire); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}
