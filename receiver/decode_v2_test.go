package receiver

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// decodeBothV2 decodes body with the generated Unmarshal and with decodeV2 (into buffers that
// held another request before, as a pooled converter's do) and requires the same outcome: both
// fail, or both give the same request. Unknown fields, which the generated code keeps in
// XXX_unrecognized and decodeV2 skips, are left out of the comparison.
func decodeBothV2(t *testing.T, body []byte) {
	t.Helper()
	var want writev2.Request
	wantErr := want.Unmarshal(body)

	c := newConverter(newMetadataCache(10))
	defer c.release()
	require.NoError(t, decodeV2(&c.v2, mustMarshalV2(t, richV2()), &c.v2buf))
	c.resetV2()
	gotErr := decodeV2(&c.v2, body, &c.v2buf)
	if wantErr != nil || gotErr != nil {
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("generated Unmarshal: %v, decodeV2: %v", wantErr, gotErr)
		}
		return
	}
	require.Equal(t, flattenV2(&want), flattenV2(&c.v2))
}

// flatV2 is a 2.0 request without what the comparison leaves out: unknown fields, and the
// difference between a nil and an empty slice. Floats are compared by their bits.
type flatV2 struct {
	Symbols []string
	Series  []flatV2Series
}

type flatV2Series struct {
	Refs       []uint32
	Samples    [][3]uint64 // value bits, timestamp, start timestamp
	Histograms []writev2.Histogram
	Exemplars  []writev2.Exemplar
	Metadata   writev2.Metadata
}

func flattenV2(r *writev2.Request) flatV2 {
	f := flatV2{Symbols: append([]string{}, r.Symbols...)}
	for _, ts := range r.Timeseries {
		s := flatV2Series{Refs: append([]uint32{}, ts.LabelsRefs...), Metadata: ts.Metadata,
			Histograms: append([]writev2.Histogram{}, ts.Histograms...), Exemplars: append([]writev2.Exemplar{}, ts.Exemplars...)}
		for _, smp := range ts.Samples {
			s.Samples = append(s.Samples, [3]uint64{math.Float64bits(smp.Value), uint64(smp.Timestamp), uint64(smp.StartTimestamp)})
		}
		f.Series = append(f.Series, s)
	}
	return f
}

func mustMarshalV2(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return b
}

// richV2 has a bit of everything 2.0 can carry.
func richV2() *writev2.Request {
	b := newV2Builder()
	b.series(labels.FromStrings("__name__", "up", "job", "j", "instance", "i", "le", "ünïcödé"),
		b.meta(writev2.Metadata_METRIC_TYPE_COUNTER, "help", "seconds"),
		[]writev2.Sample{{Timestamp: 1000, Value: 1, StartTimestamp: 500}, {Timestamp: 2000, Value: math.Float64frombits(0x7ff0000000000002)}, {Timestamp: -5, Value: -0.5}},
		nil, b.exemplar(labels.FromStrings("trace_id", "0123456789abcdef0123456789abcdef"), 2, 1500))
	b.series(labels.FromStrings("__name__", "h"), b.meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "", ""), nil,
		[]writev2.Histogram{writev2.FromIntHistogram(100, 3000, intHistogram(3000)), writev2.FromFloatHistogram(0, 4000, &histogram.FloatHistogram{Count: 2, Sum: 1, ZeroCount: 2})})
	b.series(labels.EmptyLabels(), writev2.Metadata{}, nil, nil) // no labels, no samples
	return b.build()
}

// Encodings the generated code accepts and senders rarely produce: label references unpacked
// and in several packed runs, fields repeated or out of order, unknown fields and groups, a
// packed run whose last varint runs past its end into the series, metadata in two parts.
func TestDecodeV2MatchesGenerated(t *testing.T) {
	field := func(b []byte, num, wire int) []byte { return binary.AppendUvarint(b, uint64(num)<<3|uint64(wire)) }
	bytesField := func(b []byte, num int, v []byte) []byte {
		b = field(b, num, wireBytes)
		b = binary.AppendUvarint(b, uint64(len(v)))
		return append(b, v...)
	}
	varintField := func(b []byte, num int, v uint64) []byte { return binary.AppendUvarint(field(b, num, wireVarint), v) }
	sample := func(v float64, ts, st int64) []byte {
		var s []byte
		s = binary.LittleEndian.AppendUint64(field(s, 1, wireFixed64), math.Float64bits(v))
		s = varintField(s, 2, uint64(ts))
		if st != 0 {
			s = varintField(s, 3, uint64(st))
		}
		return s
	}
	packed := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	symbols := func(b []byte) []byte {
		for _, s := range []string{"", "__name__", "up", "job", "j", "x"} {
			b = bytesField(b, fieldV2Symbols, []byte(s))
		}
		return b
	}
	withSeries := func(series ...[]byte) []byte {
		b := symbols(nil)
		for _, s := range series {
			b = bytesField(b, fieldV2Timeseries, s)
		}
		return b
	}

	var unpacked []byte
	unpacked = varintField(unpacked, 1, 1)
	unpacked = varintField(unpacked, 1, 2)
	unpacked = bytesField(unpacked, 1, packed(3, 4))
	unpacked = bytesField(unpacked, 2, sample(1.5, 1000, 0))
	unpacked = varintField(unpacked, 1, 1<<33|5) // truncated to 32 bits, as the generated code does

	var shuffled []byte
	shuffled = bytesField(shuffled, 2, sample(2, 2000, 1500))
	shuffled = bytesField(shuffled, 5, []byte{1 << 3, 2})                                   // metadata: type gauge
	shuffled = varintField(shuffled, 99, 7)                                                 // unknown
	shuffled = append(field(shuffled, 98, wireStartGroup), field(nil, 98, wireEndGroup)...) // unknown group
	shuffled = bytesField(shuffled, 1, packed(1, 2))
	shuffled = bytesField(shuffled, 5, []byte{3 << 3, 5})                           // metadata: help_ref, merged
	shuffled = bytesField(shuffled, 2, append(sample(3, 1, 0), sample(4, 5, 6)...)) // a sample's fields twice: the last wins

	// A packed run of one byte whose varint continues past it, into the series' next field.
	var overrun []byte
	overrun = append(field(overrun, 1, wireBytes), 1, 0x81)
	overrun = append(overrun, 0x01)
	overrun = bytesField(overrun, 2, sample(1, 1, 0))

	for name, body := range map[string][]byte{
		"rich":       mustMarshalV2(t, richV2()),
		"valid":      mustMarshalV2(t, validV2()),
		"empty":      nil,
		"unpacked":   withSeries(unpacked),
		"shuffled":   withSeries(shuffled, unpacked),
		"overrun":    withSeries(overrun),
		"symbolLast": append(bytesField(nil, fieldV2Timeseries, unpacked), symbols(nil)...),
		"badWire":    withSeries(varintField(nil, 2, 1)),
		"truncated":  withSeries(unpacked)[:40],
	} {
		t.Run(name, func(t *testing.T) { decodeBothV2(t, body) })
	}
}

// The symbol strings decodeV2 gives (pipeline data's label names and values) stay as they were
// when the body is overwritten and the converter decodes another request: they are copies in a
// buffer of the request's own, never the body's bytes or a buffer that is written again.
func TestDecodeV2SymbolsOutliveBody(t *testing.T) {
	c := newConverter(newMetadataCache(10))
	defer c.release()
	body := mustMarshalV2(t, richV2())
	require.NoError(t, decodeV2(&c.v2, body, &c.v2buf))
	syms := append([]string{}, c.v2.Symbols...) // the strings, not the reused array
	var want []string
	for _, s := range syms {
		want = append(want, strings.Clone(s))
	}
	for i := range body {
		body[i] = 0xff
	}
	c.resetV2()
	require.NoError(t, decodeV2(&c.v2, mustMarshalV2(t, validV2()), &c.v2buf))
	require.Equal(t, want, syms)
}

// FuzzDecodeV2 compares decodeV2 with the generated Unmarshal on arbitrary bodies.
func FuzzDecodeV2(f *testing.F) {
	f.Add(mustMarshalV2(f, richV2()))
	f.Add(mustMarshalV2(f, validV2()))
	f.Fuzz(func(t *testing.T, body []byte) { decodeBothV2(t, body) })
}
