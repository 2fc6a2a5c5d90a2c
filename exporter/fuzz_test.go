package exporter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

// fuzzTarget is the exporter, built by its factory, writing into a real metricstor store on a
// temporary directory. One per fuzzing process: opening a store per input would be most of the
// work.
type fuzzTarget struct {
	exp   exporter.Metrics
	store storage.Store
}

func newFuzzTarget(f testing.TB, mutate func(*Config)) *fuzzTarget {
	ctx := context.Background()
	sf := storage.NewFactory()
	scfg := sf.CreateDefaultConfig()
	// Retention off, so that old timestamps are not the only thing the fuzzer meets.
	if err := confmap.NewFromStringMap(map[string]any{"directory": f.TempDir(), "retention": "0s"}).Unmarshal(scfg); err != nil {
		f.Fatal(err)
	}
	id := component.MustNewID("metricstor")
	ext, err := sf.Create(ctx, extension.Settings{ID: id, TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}, scfg)
	if err != nil {
		f.Fatal(err)
	}
	host := testHost{exts: map[component.ID]component.Component{id: ext}}
	if err := ext.Start(ctx, host); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ext.Shutdown(ctx) })

	cfg := createDefaultConfig().(*Config)
	cfg.RetryConfig.Enabled = false // an error comes back to the fuzz function instead of a retry loop
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	set := exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}
	set.Logger = zap.NewNop()
	exp, err := NewFactory().CreateMetrics(ctx, set, cfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := exp.Start(ctx, host); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = exp.Shutdown(ctx) })
	return &fuzzTarget{exp: exp, store: ext.(storage.Store)}
}

// push sends md and checks the exporter's contract for data it may not like: the store is
// running, so any error is about the data and must be permanent (a retryable error would make
// the pipeline retry bad data forever) and must say something.
func (ft *fuzzTarget) push(t *testing.T, md pmetric.Metrics) error {
	err := ft.exp.ConsumeMetrics(context.Background(), md)
	if err != nil {
		if !consumererror.IsPermanent(err) {
			t.Fatalf("retryable error for data the store cannot take (%d data points): %v", md.DataPointCount(), err)
		}
		if err.Error() == "" {
			t.Fatal("permanent error without a message")
		}
	}
	return err
}

// FuzzPushProto unmarshals the input as an OTLP metrics request body (the bytes an OTLP
// receiver decodes) and pushes whatever that gives into the store: duplicate attributes, empty
// or invalid UTF-8 names, mismatched histogram buckets and any other shape protobuf allows. The
// exporter must not panic, and each error must be permanent. Seed corpus: the exporter tests'
// data of every kind, remote write pass-through data, and testdata/fuzz/FuzzPushProto.
func FuzzPushProto(f *testing.F) {
	var m pmetric.ProtoMarshaler
	for _, md := range []pmetric.Metrics{allKinds(), passthroughBatch(t0), hostileMetrics(hostileInput{kind: 3, name: "h", bounds: 3, c0: 1, c1: 2})} {
		b, err := m.MarshalMetrics(md)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ft := newFuzzTarget(f, nil)
	var u pmetric.ProtoUnmarshaler
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := u.UnmarshalMetrics(body)
		if err != nil {
			return // the receiver answers 400 before the exporter sees it
		}
		_ = ft.push(t, md)
	})
}

// hostileInput is the fuzzer's choice of one metric with one data point: what FuzzPushHostile
// builds, field by field, into shapes that are valid protobuf but hostile data.
type hostileInput struct {
	kind        uint8 // 0 gauge (double), 1 gauge (int), 2 sum, 3 histogram, 4 exponential histogram, 5 summary, 6 no data type
	name, unit  string
	key, val    string // one data point attribute (and a resource attribute)
	v           float64
	tsMs        int64
	startMs     int64
	count       uint64
	c0, c1      uint64 // bucket counts
	bounds      uint8  // number of explicit bounds, independent of the number of counts
	bound       float64
	scale       int32
	offset      int32
	flags       uint8  // bit 0: delta temporality; 1: monotonic; 2: no recorded value; 3: remote write pass-through scope; 4: attributes whose names escape to the same label
	passthrough []byte // a marshaled remote write 2.0 histogram for the pass-through scope
}

var hostileInstance atomic.Int64

// hostileMetrics builds the metric of in under a resource with a fresh service.instance.id, so
// that what one input stored can be found again.
func hostileMetrics(in hostileInput) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	res := rm.Resource().Attributes()
	res.PutStr("service.name", "fuzz")
	res.PutStr("service.instance.id", fmt.Sprintf("fuzz-%d", hostileInstance.Add(1)))
	res.PutStr(in.key, in.val)
	sm := rm.ScopeMetrics().AppendEmpty()
	if in.flags&8 != 0 {
		sm.Scope().SetName(passthrough.ScopeName)
	}
	m := sm.Metrics().AppendEmpty()
	m.SetName(in.name)
	m.SetUnit(in.unit)
	m.SetDescription(in.val)
	temporality := pmetric.AggregationTemporalityCumulative
	if in.flags&1 != 0 {
		temporality = pmetric.AggregationTemporalityDelta
	}
	dpFlags := pmetric.DefaultDataPointFlags.WithNoRecordedValue(in.flags&4 != 0)
	ts, start := pcommon.Timestamp(uint64(in.tsMs)*1e6), pcommon.Timestamp(uint64(in.startMs)*1e6)
	putAttrs := func(a pcommon.Map) {
		a.PutStr(in.key, in.val)
		if in.flags&16 != 0 {
			// Two keys that escape to the same label name.
			a.PutStr(in.key+".", in.val)
			a.PutStr(in.key+"_", in.val)
		}
	}
	bounds := make([]float64, in.bounds%8)
	for i := range bounds {
		bounds[i] = in.bound * float64(i+1)
	}
	switch in.kind % 7 {
	case 0, 1, 2:
		var dp pmetric.NumberDataPoint
		if in.kind%7 == 2 {
			s := m.SetEmptySum()
			s.SetAggregationTemporality(temporality)
			s.SetIsMonotonic(in.flags&2 != 0)
			dp = s.DataPoints().AppendEmpty()
		} else {
			dp = m.SetEmptyGauge().DataPoints().AppendEmpty()
		}
		if in.kind%7 == 1 {
			dp.SetIntValue(int64(in.count))
		} else {
			dp.SetDoubleValue(in.v)
		}
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(start)
		dp.SetFlags(dpFlags)
		putAttrs(dp.Attributes())
	case 3:
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(temporality)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(start)
		dp.SetFlags(dpFlags)
		dp.SetCount(in.count)
		dp.SetSum(in.v)
		dp.SetMin(in.bound)
		dp.SetMax(-in.bound)
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw([]uint64{in.c0, in.c1})
		putAttrs(dp.Attributes())
		if in.flags&8 != 0 && len(in.passthrough) > 0 {
			enc := m.Metadata().PutEmptySlice(passthrough.KeyNativeHistograms)
			enc.AppendEmpty().SetEmptyBytes().FromRaw(in.passthrough)
			m.Metadata().PutStr(passthrough.KeyType, in.unit)
		}
	case 4:
		e := m.SetEmptyExponentialHistogram()
		e.SetAggregationTemporality(temporality)
		dp := e.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(start)
		dp.SetFlags(dpFlags)
		dp.SetScale(in.scale)
		dp.SetCount(in.count)
		dp.SetSum(in.v)
		dp.SetZeroCount(in.c1)
		dp.SetZeroThreshold(in.bound)
		dp.Positive().SetOffset(in.offset)
		dp.Positive().BucketCounts().FromRaw([]uint64{in.c0, in.c1})
		dp.Negative().SetOffset(-in.offset)
		dp.Negative().BucketCounts().FromRaw([]uint64{in.c1})
		putAttrs(dp.Attributes())
	case 5:
		dp := m.SetEmptySummary().DataPoints().AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetStartTimestamp(start)
		dp.SetFlags(dpFlags)
		dp.SetCount(in.count)
		dp.SetSum(in.v)
		for _, q := range []float64{in.bound, in.v, in.bound} { // odd, repeated quantiles
			qv := dp.QuantileValues().AppendEmpty()
			qv.SetQuantile(q)
			qv.SetValue(in.v)
		}
		putAttrs(dp.Attributes())
	case 6:
		// A metric without a data type.
	}
	return md
}

// FuzzPushHostile builds one metric of any kind from fuzzed fields (NaN and infinite values, huge
// and negative-looking counts, explicit bounds that do not match the bucket counts, extreme
// exponential scales and offsets, odd quantiles, empty names and invalid UTF-8, colliding label
// names, delta temporality, the remote write pass-through scope with a fuzzed native histogram
// encoding) and pushes it into the store. The exporter must not panic, each error must be
// permanent, and a gauge the exporter accepted without error is stored and can be selected
// again by its instance label. Seed corpus: testdata/fuzz/FuzzPushHostile.
func FuzzPushHostile(f *testing.F) {
	h := &writev2.Histogram{Count: &writev2.Histogram_CountInt{CountInt: 3}, Sum: 4.5, Schema: 0,
		ZeroThreshold: 1e-128, ZeroCount: &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1},
		PositiveSpans: []writev2.BucketSpan{{Offset: 0, Length: 2}}, PositiveDeltas: []int64{1, 0}, Timestamp: t0}
	enc, err := h.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	for _, in := range []hostileInput{
		{key: "k", val: "v", kind: 0, name: "g", v: 1.5, tsMs: t0},
		{kind: 0, name: "", v: math.NaN(), tsMs: t0, key: "", val: ""},
		{kind: 1, name: "\xff\xfe", count: math.MaxUint64, tsMs: t0, key: "k\xff", val: "v"},
		{key: "k", val: "v", kind: 2, name: "s", unit: "{req}", v: math.Inf(1), tsMs: t0, flags: 1 | 2},
		{key: "k", val: "v", kind: 3, name: "h", unit: "s", v: -1, tsMs: t0, count: 1, c0: math.MaxUint64, c1: math.MaxUint64, bounds: 5, bound: math.Inf(-1)},
		{key: "k", val: "v", kind: 3, name: "nh", tsMs: t0, flags: 8, unit: "histogram", passthrough: enc},
		{key: "k", val: "v", kind: 4, name: "e", tsMs: t0, count: 3, c0: 1, c1: 2, scale: math.MaxInt32, offset: math.MinInt32, bound: math.NaN()},
		{key: "k", val: "v", kind: 4, name: "e2", tsMs: t0, count: 3, c0: 1, c1: 2, scale: -100, offset: math.MaxInt32},
		{key: "k", val: "v", kind: 5, name: "q", tsMs: t0, count: 2, v: 1, bound: -0.5},
		{key: "k", val: "v", kind: 6, name: "empty", tsMs: t0},
		{kind: 0, name: "k", key: "a", val: "b", flags: 16 | 4, tsMs: -1},
	} {
		f.Add(in.kind, in.name, in.unit, in.key, in.val, in.v, in.tsMs, in.startMs, in.count, in.c0, in.c1, in.bounds, in.bound, in.scale, in.offset, in.flags, in.passthrough)
	}
	ft := newFuzzTarget(f, nil)
	f.Fuzz(func(t *testing.T, kind uint8, name, unit, key, val string, v float64, tsMs, startMs int64,
		count, c0, c1 uint64, bounds uint8, bound float64, scale, offset int32, flags uint8, pt []byte) {
		in := hostileInput{kind: kind, name: name, unit: unit, key: key, val: val, v: v, tsMs: tsMs, startMs: startMs,
			count: count, c0: c0, c1: c1, bounds: bounds, bound: bound, scale: scale, offset: offset, flags: flags, passthrough: pt}
		md := hostileMetrics(in)
		instance, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get("service.instance.id")
		if err := ft.push(t, md); err != nil {
			return
		}
		// Accepted without error: a gauge with a recorded value is stored under its instance.
		// Timestamps before 1970 or past year 2262 wrap in nanoseconds and are not checked.
		if in.kind%7 != 0 || in.flags&(4|8) != 0 || in.tsMs < 0 || in.tsMs > math.MaxInt64/1_000_000 {
			return
		}
		if n := countSeries(t, ft.store, instance.Str()); n == 0 {
			t.Fatalf("gauge %q at %d ms accepted without error but no series has instance %q", in.name, in.tsMs, instance.Str())
		}
	})
}

// countSeries returns how many series of the store have the given instance label.
func countSeries(t *testing.T, store storage.Store, instance string) int {
	q, err := store.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "instance", instance))
	n := 0
	for ss.Next() {
		n++
	}
	if err := ss.Err(); err != nil && !errors.Is(err, promstorage.ErrNotFound) {
		t.Fatal(err)
	}
	return n
}
