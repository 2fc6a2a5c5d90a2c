package receiver

import (
	"encoding/hex"
	"fmt"
	"math"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	intmeta "github.com/metricstor/metricstor/receiver/internal/metadata"
)

// Keys of pmetric.Metric.Metadata() the receiver fills. They are not attributes, so no exporter
// turns them into labels; the metricstor exporter reads them back (see README, "Mapping").
const (
	// MetadataKeyType is the Prometheus metric type the sender declared (counter, gauge,
	// histogram, gaugehistogram, summary, info, stateset, unknown). Absent without metadata.
	MetadataKeyType = "prometheus.type"
	// MetadataKeyFamily is the metric family name the metadata belongs to, when it differs from
	// the series name (foo for foo_bucket).
	MetadataKeyFamily = "prometheus.metric_family_name"
	// MetadataKeyNativeHistograms holds, per data point of a histogram metric and in the same
	// order, the exact native histogram as a marshaled io.prometheus.write.v2.Histogram (with its
	// timestamp). pmetric cannot hold float bucket counts or a counter reset hint.
	MetadataKeyNativeHistograms = "prometheus.native_histograms"
)

// maxDenseBuckets bounds the bucket range of one native histogram that becomes a dense pmetric
// bucket array; wider ranges are rejected as invalid rather than allocated.
const maxDenseBuckets = 1 << 14

// maxTimestampMs is the largest millisecond timestamp whose nanoseconds fit a pcommon.Timestamp
// without overflowing int64 arithmetic (year 2262).
const maxTimestampMs int64 = math.MaxInt64 / 1_000_000

type resourceKey struct{ job, instance string }

type metricKind uint8

const (
	kindGauge metricKind = iota
	kindSum
	kindExponential
	kindCustomBuckets
)

type metricKey struct {
	res  resourceKey
	name string
	kind metricKind
}

// converter turns one request into pmetric.Metrics: a resource per (job, instance), one scope
// (the receiver's), a metric per (series name, kind). It is used by one request only.
type converter struct {
	meta      *metadataCache
	md        pmetric.Metrics
	resources map[resourceKey]pmetric.MetricSlice
	metrics   map[metricKey]pmetric.Metric
	builder   labels.ScratchBuilder

	samples, histograms, exemplars int      // what goes into the pipeline
	rejectedSamples                int      // samples, histograms and exemplars of rejected series
	errs                           []string // one line per rejected series
}

func newConverter(meta *metadataCache) *converter {
	return &converter{
		meta:      meta,
		md:        pmetric.NewMetrics(),
		resources: map[resourceKey]pmetric.MetricSlice{},
		metrics:   map[metricKey]pmetric.Metric{},
		builder:   labels.NewScratchBuilder(8),
	}
}

// series is one decoded time series, whatever the protocol version.
type series struct {
	ls         labels.Labels
	meta       metadata.Metadata
	hasMeta    bool
	family     string
	samples    []sampleV
	histograms []histV
	exemplars  []exemplar.Exemplar
}

type sampleV struct {
	st, t int64
	v     float64
}

type histV struct {
	st, t int64
	h     *histogram.Histogram
	fh    *histogram.FloatHistogram
}

func (c *converter) fromV1(req *prompb.WriteRequest) {
	// Metadata first: Prometheus sends it in requests of its own, so it is remembered for the
	// series of later requests as well.
	for _, m := range req.Metadata {
		if m.MetricFamilyName == "" {
			continue
		}
		c.meta.put(m.MetricFamilyName, metadata.Metadata{
			Type: prompbMetricType(m.Type),
			Unit: m.Unit,
			Help: m.Help,
		})
	}
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		s := series{ls: ts.ToLabels(&c.builder, nil)}
		for _, smp := range ts.Samples {
			s.samples = append(s.samples, sampleV{t: smp.Timestamp, v: smp.Value})
		}
		for _, h := range ts.Histograms {
			hv := histV{t: h.Timestamp}
			if h.IsFloatHistogram() {
				hv.fh = h.ToFloatHistogram()
			} else {
				hv.h = h.ToIntHistogram()
			}
			s.histograms = append(s.histograms, hv)
		}
		for _, e := range ts.Exemplars {
			s.exemplars = append(s.exemplars, e.ToExemplar(&c.builder, nil))
		}
		name := s.ls.Get(model.MetricNameLabel)
		s.family, s.meta, s.hasMeta = c.meta.lookup(name)
		c.addSeries(&s, len(ts.Samples)+len(ts.Histograms)+len(ts.Exemplars))
	}
}

func (c *converter) fromV2(req *writev2.Request) {
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		n := len(ts.Samples) + len(ts.Histograms) + len(ts.Exemplars)
		ls, err := ts.ToLabels(&c.builder, req.Symbols)
		if err != nil {
			c.reject(n, fmt.Sprintf("series %d: labels: %v", i, err))
			continue
		}
		m, err := ts.ToMetadata(req.Symbols)
		if err != nil {
			c.reject(n, fmt.Sprintf("series %s: metadata: %v", ls.String(), err))
			continue
		}
		s := series{ls: ls, meta: m}
		s.hasMeta = m.Type != model.MetricTypeUnknown || m.Unit != "" || m.Help != ""
		s.family = familyOf(ls.Get(model.MetricNameLabel), m.Type)
		if len(ts.Samples) == 0 && len(ts.Histograms) == 0 {
			c.reject(n, fmt.Sprintf("series %s: must contain at least one sample or histogram", ls.String()))
			continue
		}
		for _, smp := range ts.Samples {
			s.samples = append(s.samples, sampleV{st: smp.StartTimestamp, t: smp.Timestamp, v: smp.Value})
		}
		for _, h := range ts.Histograms {
			hv := histV{st: h.StartTimestamp, t: h.Timestamp}
			if h.IsFloatHistogram() {
				hv.fh = h.ToFloatHistogram()
			} else {
				hv.h = h.ToIntHistogram()
			}
			s.histograms = append(s.histograms, hv)
		}
		exemplarsOK := true
		for _, e := range ts.Exemplars {
			ex, err := e.ToExemplar(&c.builder, req.Symbols)
			if err != nil {
				c.reject(n, fmt.Sprintf("series %s: exemplar: %v", ls.String(), err))
				exemplarsOK = false
				break
			}
			s.exemplars = append(s.exemplars, ex)
		}
		if exemplarsOK {
			c.addSeries(&s, n)
		}
	}
}

func (c *converter) reject(n int, msg string) {
	c.rejectedSamples += n
	c.errs = append(c.errs, msg)
}

// validate applies Prometheus's rules for a remote-written series: a metric name, valid UTF-8
// label names and values, no empty or duplicate label names; timestamps pmetric can hold;
// valid native histograms.
func (c *converter) validate(s *series) error {
	if !s.ls.Has(model.MetricNameLabel) || s.ls.Get(model.MetricNameLabel) == "" {
		return fmt.Errorf("series %s: missing metric name (label __name__)", s.ls.String())
	}
	if !s.ls.IsValid(model.UTF8Validation) {
		return fmt.Errorf("series %s: invalid label name or value (empty name, or not UTF-8)", s.ls.String())
	}
	if name, dup := s.ls.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("series %s: duplicate label name %q", s.ls.String(), name)
	}
	checkTS := func(t int64, what string) error {
		if t < 0 || t > maxTimestampMs {
			return fmt.Errorf("series %s: %s timestamp %d out of range (0 to %d ms since 1970)", s.ls.String(), what, t, maxTimestampMs)
		}
		return nil
	}
	for _, smp := range s.samples {
		if err := checkTS(smp.t, "sample"); err != nil {
			return err
		}
		if err := checkTS(smp.st, "start"); err != nil {
			return err
		}
	}
	for _, h := range s.histograms {
		if err := checkTS(h.t, "histogram"); err != nil {
			return err
		}
		if err := checkTS(h.st, "start"); err != nil {
			return err
		}
		var err error
		if h.h != nil {
			err = h.h.Validate()
		} else {
			err = h.fh.Validate()
		}
		if err != nil {
			return fmt.Errorf("series %s: invalid native histogram at %d: %w", s.ls.String(), h.t, err)
		}
		if lo, hi, ok := bucketRange(h); ok && hi-lo >= maxDenseBuckets {
			return fmt.Errorf("series %s: native histogram at %d spans %d buckets (at most %d)", s.ls.String(), h.t, hi-lo+1, maxDenseBuckets)
		}
	}
	for _, e := range s.exemplars {
		if err := checkTS(e.Ts, "exemplar"); err != nil {
			return err
		}
	}
	return nil
}

func (c *converter) addSeries(s *series, n int) {
	if err := c.validate(s); err != nil {
		c.reject(n, err.Error())
		return
	}
	rk := resourceKey{job: s.ls.Get(model.JobLabel), instance: s.ls.Get(model.InstanceLabel)}
	name := s.ls.Get(model.MetricNameLabel)

	if len(s.samples) > 0 {
		kind := kindGauge
		if s.hasMeta && s.meta.Type == model.MetricTypeCounter {
			kind = kindSum
		}
		m := c.metric(rk, name, kind, s)
		var dps pmetric.NumberDataPointSlice
		if kind == kindSum {
			dps = m.Sum().DataPoints()
		} else {
			dps = m.Gauge().DataPoints()
		}
		for i, smp := range s.samples {
			dp := dps.AppendEmpty()
			putAttributes(dp.Attributes(), s.ls)
			dp.SetTimestamp(msToTimestamp(smp.t))
			dp.SetStartTimestamp(msToTimestamp(smp.st))
			dp.SetDoubleValue(smp.v)
			if value.IsStaleNaN(smp.v) {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			}
			if i == len(s.samples)-1 {
				putExemplars(dp.Exemplars(), s.exemplars)
			}
		}
		c.samples += len(s.samples)
	}
	for i, h := range s.histograms {
		custom := (h.h != nil && histogram.IsCustomBucketsSchema(h.h.Schema)) || (h.fh != nil && histogram.IsCustomBucketsSchema(h.fh.Schema))
		kind := kindExponential
		if custom {
			kind = kindCustomBuckets
		}
		m := c.metric(rk, name, kind, s)
		ex := s.exemplars
		if len(s.samples) > 0 || i != len(s.histograms)-1 {
			ex = nil // exemplars go with the last sample of the series
		}
		c.addHistogram(m, kind, s.ls, h, ex)
	}
	c.histograms += len(s.histograms)
	c.exemplars += len(s.exemplars)
	if len(s.samples) == 0 && len(s.histograms) == 0 && len(s.exemplars) > 0 {
		// 1.0 allows exemplars without samples; they have nothing to ride on through the pipeline.
		c.exemplars -= len(s.exemplars)
		c.reject(len(s.exemplars), fmt.Sprintf("series %s: exemplars without a sample in the same series are not supported", s.ls.String()))
	}
}

// metric returns the metric of (resource, name, kind), creating resource and metric as needed.
func (c *converter) metric(rk resourceKey, name string, kind metricKind, s *series) pmetric.Metric {
	key := metricKey{res: rk, name: name, kind: kind}
	if m, ok := c.metrics[key]; ok {
		return m
	}
	ms, ok := c.resources[rk]
	if !ok {
		rm := c.md.ResourceMetrics().AppendEmpty()
		attrs := rm.Resource().Attributes()
		if rk.job != "" {
			attrs.PutStr("service.name", rk.job)
		}
		if rk.instance != "" {
			attrs.PutStr("service.instance.id", rk.instance)
		}
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(intmeta.ScopeName)
		ms = sm.Metrics()
		c.resources[rk] = ms
	}
	m := ms.AppendEmpty()
	m.SetName(name)
	if s.hasMeta {
		m.SetUnit(s.meta.Unit)
		m.SetDescription(s.meta.Help)
		typ := s.meta.Type
		if typ == "" {
			typ = model.MetricTypeUnknown
		}
		m.Metadata().PutStr(MetadataKeyType, string(typ))
		if s.family != "" && s.family != name {
			m.Metadata().PutStr(MetadataKeyFamily, s.family)
		}
	}
	switch kind {
	case kindGauge:
		m.SetEmptyGauge()
	case kindSum:
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case kindExponential:
		m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case kindCustomBuckets:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	c.metrics[key] = m
	return m
}

// addHistogram appends one native histogram: a pmetric view (exponential or explicit buckets,
// counts rounded for float histograms) and the exact histogram in MetadataKeyNativeHistograms.
func (c *converter) addHistogram(m pmetric.Metric, kind metricKind, ls labels.Labels, h histV, ex []exemplar.Exemplar) {
	var exact writev2.Histogram
	fh := h.fh
	if h.h != nil {
		exact = writev2.FromIntHistogram(h.st, h.t, h.h)
		fh = h.h.ToFloat(nil)
	} else {
		exact = writev2.FromFloatHistogram(h.st, h.t, h.fh)
	}
	raw, _ := exact.Marshal() // marshaling a valid message does not fail
	enc := m.Metadata()
	var list pcommon.Slice
	if v, ok := enc.Get(MetadataKeyNativeHistograms); ok {
		list = v.Slice()
	} else {
		list = enc.PutEmptySlice(MetadataKeyNativeHistograms)
	}
	list.AppendEmpty().SetEmptyBytes().FromRaw(raw)

	stale := value.IsStaleNaN(fh.Sum)
	if kind == kindCustomBuckets {
		dp := m.Histogram().DataPoints().AppendEmpty()
		putAttributes(dp.Attributes(), ls)
		dp.SetTimestamp(msToTimestamp(h.t))
		dp.SetStartTimestamp(msToTimestamp(h.st))
		dp.SetCount(roundCount(fh.Count))
		dp.SetSum(fh.Sum)
		dp.ExplicitBounds().FromRaw(fh.CustomValues)
		counts := make([]uint64, len(fh.CustomValues)+1)
		it := fh.PositiveBucketIterator()
		for it.Next() {
			b := it.At()
			if b.Index >= 0 && int(b.Index) < len(counts) {
				counts[b.Index] = roundCount(b.Count)
			}
		}
		dp.BucketCounts().FromRaw(counts)
		if stale {
			dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
		}
		putExemplars(dp.Exemplars(), ex)
		return
	}
	dp := m.ExponentialHistogram().DataPoints().AppendEmpty()
	putAttributes(dp.Attributes(), ls)
	dp.SetTimestamp(msToTimestamp(h.t))
	dp.SetStartTimestamp(msToTimestamp(h.st))
	dp.SetScale(fh.Schema)
	dp.SetCount(roundCount(fh.Count))
	dp.SetSum(fh.Sum)
	dp.SetZeroThreshold(fh.ZeroThreshold)
	dp.SetZeroCount(roundCount(fh.ZeroCount))
	denseBuckets(dp.Positive(), fh.PositiveBucketIterator())
	denseBuckets(dp.Negative(), fh.NegativeBucketIterator())
	if stale {
		dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	}
	putExemplars(dp.Exemplars(), ex)
}

// denseBuckets fills OTLP exponential buckets from Prometheus buckets. Prometheus bucket i covers
// (base^(i-1), base^i], OTLP bucket offset+k covers (base^(offset+k), base^(offset+k+1)]: the
// OTLP index is the Prometheus index minus one.
func denseBuckets(out pmetric.ExponentialHistogramDataPointBuckets, it histogram.BucketIterator[float64]) {
	var idx []int32
	var cnt []uint64
	for it.Next() {
		b := it.At()
		idx = append(idx, b.Index)
		cnt = append(cnt, roundCount(b.Count))
	}
	if len(idx) == 0 {
		return
	}
	lo := idx[0]
	counts := make([]uint64, idx[len(idx)-1]-lo+1)
	for i, ix := range idx {
		counts[ix-lo] = cnt[i]
	}
	out.SetOffset(lo - 1)
	out.BucketCounts().FromRaw(counts)
}

// bucketRange returns the lowest and highest bucket index of a histogram over both signs.
func bucketRange(h histV) (lo, hi int64, ok bool) {
	var spans [][]histogram.Span
	if h.h != nil {
		spans = [][]histogram.Span{h.h.PositiveSpans, h.h.NegativeSpans}
	} else {
		spans = [][]histogram.Span{h.fh.PositiveSpans, h.fh.NegativeSpans}
	}
	for _, ss := range spans {
		var idx int64
		for i, sp := range ss {
			idx += int64(sp.Offset)
			if sp.Length == 0 {
				continue
			}
			first, last := idx, idx+int64(sp.Length)-1
			if !ok || first < lo {
				lo = first
			}
			if !ok || last > hi {
				hi = last
			}
			ok = true
			idx += int64(sp.Length)
			_ = i
		}
	}
	return lo, hi, ok
}

func roundCount(f float64) uint64 {
	if f <= 0 || math.IsNaN(f) {
		return 0
	}
	if f >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(f))
}

// putAttributes copies the labels of a series to data point attributes, except __name__ (the
// metric name), job and instance (resource attributes service.name and service.instance.id).
// Labels with an empty value are absent in Prometheus and are not copied.
func putAttributes(attrs pcommon.Map, ls labels.Labels) {
	attrs.EnsureCapacity(ls.Len())
	ls.Range(func(l labels.Label) {
		switch l.Name {
		case model.MetricNameLabel, model.JobLabel, model.InstanceLabel:
			return
		}
		if l.Value != "" {
			attrs.PutStr(l.Name, l.Value)
		}
	})
}

// putExemplars maps exemplars: labels become filtered attributes (all of them, trace_id and
// span_id included); a trace_id or span_id label that is valid hex of the right length also sets
// the exemplar's trace or span ID.
func putExemplars(out pmetric.ExemplarSlice, exs []exemplar.Exemplar) {
	for _, e := range exs {
		pe := out.AppendEmpty()
		pe.SetDoubleValue(e.Value)
		if e.HasTs {
			pe.SetTimestamp(msToTimestamp(e.Ts))
		}
		e.Labels.Range(func(l labels.Label) {
			pe.FilteredAttributes().PutStr(l.Name, l.Value)
			switch l.Name {
			case "trace_id":
				var id pcommon.TraceID
				if b, err := hex.DecodeString(l.Value); err == nil && len(b) == len(id) {
					copy(id[:], b)
					pe.SetTraceID(id)
				}
			case "span_id":
				var id pcommon.SpanID
				if b, err := hex.DecodeString(l.Value); err == nil && len(b) == len(id) {
					copy(id[:], b)
					pe.SetSpanID(id)
				}
			}
		})
	}
}

func msToTimestamp(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * 1e6) }

func prompbMetricType(t prompb.MetricMetadata_MetricType) model.MetricType {
	switch t {
	case prompb.MetricMetadata_COUNTER:
		return model.MetricTypeCounter
	case prompb.MetricMetadata_GAUGE:
		return model.MetricTypeGauge
	case prompb.MetricMetadata_HISTOGRAM:
		return model.MetricTypeHistogram
	case prompb.MetricMetadata_GAUGEHISTOGRAM:
		return model.MetricTypeGaugeHistogram
	case prompb.MetricMetadata_SUMMARY:
		return model.MetricTypeSummary
	case prompb.MetricMetadata_INFO:
		return model.MetricTypeInfo
	case prompb.MetricMetadata_STATESET:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}

// classicSuffixes are the suffixes by which a series name differs from its family's name.
var classicSuffixes = []string{"_bucket", "_sum", "_count", "_gsum", "_gcount", "_total", "_created", "_info"}

// familyOf derives the metric family of a 2.0 series from its name and declared type: the
// _bucket, _sum, _count (and _gsum, _gcount) series of a classic histogram or summary belong to
// the family without the suffix; any other series is its own family.
func familyOf(name string, typ model.MetricType) string {
	switch typ {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary:
		for _, suf := range classicSuffixes[:5] {
			if f, ok := strings.CutSuffix(name, suf); ok && f != "" {
				return f
			}
		}
	}
	return name
}
