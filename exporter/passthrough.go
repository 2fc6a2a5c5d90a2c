package exporter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// Data of the remote_write receiver (../receiver) is recognised by its instrumentation scope and
// written back as the exact series the sender sent, without Prometheus's OTLP translator, as the
// contract in internal/passthrough says: the translator cannot restore float histograms, counter
// reset hints, metadata types other than counter/gauge/histogram/summary, metadata of classic
// histogram families, or exemplars of gauges.

// splitRemoteWrite tells whether md holds data of the remote_write receiver and returns the rest,
// for the translator: md itself when there is none, an empty Metrics when all of it is, a copy of
// the other scopes otherwise.
func splitRemoteWrite(md pmetric.Metrics) (rest pmetric.Metrics, has bool) {
	var rw, other int
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			if sms.At(j).Scope().Name() == passthrough.ScopeName {
				rw++
			} else {
				other++
			}
		}
	}
	switch {
	case rw == 0:
		return md, false
	case other == 0:
		return pmetric.NewMetrics(), true
	}
	rest = pmetric.NewMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		var out pmetric.ResourceMetrics
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			if sms.At(j).Scope().Name() == passthrough.ScopeName {
				continue
			}
			if out == (pmetric.ResourceMetrics{}) {
				out = rest.ResourceMetrics().AppendEmpty()
				rm.Resource().CopyTo(out.Resource())
				out.SetSchemaUrl(rm.SchemaUrl())
			}
			sms.At(j).CopyTo(out.ScopeMetrics().AppendEmpty())
		}
	}
	return rest, true
}

// writeRemoteWrite appends the remote_write receiver's scopes of md to app as the series they
// came from. Per-sample rejections are counted by app; a fatal append error stops and is returned
// as fatal. Data points that cannot be restored (a native histogram without its exact encoding)
// are skipped and reported in the returned error, which is permanent. cache maps data points to
// series (nil: none); st holds the buffers one push reuses.
func writeRemoteWrite(ctx context.Context, md pmetric.Metrics, app *countingAppender, cache *seriesCache, st *pushState) (fatal, invalid error) {
	var look []cacheLookup
	if cache != nil {
		look = lookupNumbers(md, cache, st)
	}
	var errs []error
	eachRemoteWriteMetric(md, func(job, instance string, m pmetric.Metric) bool {
		if err := ctx.Err(); err != nil {
			fatal = err
			return false
		}
		// In st, not on the stack: the appender calls back into it (labelSource), which would
		// move a local to the heap once per metric.
		w := &st.metric
		*w = rwMetric{app: app, b: &st.builder, cache: cache, m: m, job: job, instance: instance}
		w.opts = promstorage.AOptions{Metadata: rwMetadata(w.m), MetricFamilyName: w.m.Name()}
		if fam, ok := w.m.Metadata().Get(passthrough.KeyFamily); ok && fam.Str() != "" {
			w.opts.MetricFamilyName = fam.Str()
		}
		if dps, ok := numberPoints(w.m); ok && look != nil {
			w.look, look = look[:dps.Len()], look[dps.Len():]
		}
		w.key = metricKey(st.key[:0], w.m.Name(), w.job, w.instance)
		w.prefix = len(w.key)
		err := w.write()
		st.key = w.key // keep the grown buffer for the next metric and push
		if err != nil {
			if app.fatal != nil {
				fatal = app.fatal
				return false
			}
			errs = append(errs, err)
		}
		return true
	})
	st.metric = rwMetric{} // holds nothing of md past the push
	if fatal != nil {
		return fatal, nil
	}
	return nil, errors.Join(errs...)
}

// eachRemoteWriteMetric calls f with every metric of the remote write receiver's scopes of md and
// its resource's job and instance, in order, until f returns false.
func eachRemoteWriteMetric(md pmetric.Metrics, f func(job, instance string, m pmetric.Metric) bool) {
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		job, _ := rm.Resource().Attributes().Get(passthrough.JobAttribute)
		instance, _ := rm.Resource().Attributes().Get(passthrough.InstanceAttribute)
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			if sms.At(j).Scope().Name() != passthrough.ScopeName {
				continue
			}
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				if !f(job.Str(), instance.Str(), ms.At(k)) {
					return
				}
			}
		}
	}
}

// metricKey appends the part of a data point's key its metric gives (see rwMetric.key).
func metricKey(b []byte, name, job, instance string) []byte {
	return appendKeyString(appendKeyString(appendKeyString(b, name), job), instance)
}

// numberPoints returns the data points of a gauge or sum.
func numberPoints(m pmetric.Metric) (pmetric.NumberDataPointSlice, bool) {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints(), true
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints(), true
	}
	return pmetric.NumberDataPointSlice{}, false
}

// lookupNumbers looks up the series of every gauge and sum data point of the remote write scopes
// of md in one batch (seriesCache.getBatch: the more lookups a batch holds, the more of their
// cache misses overlap; a request's metrics are often a few dozen points each), in the order
// writeRemoteWrite visits them.
func lookupNumbers(md pmetric.Metrics, cache *seriesCache, st *pushState) []cacheLookup {
	b := &st.batch
	b.keys, b.ends = b.keys[:0], b.ends[:0]
	eachRemoteWriteMetric(md, func(job, instance string, m pmetric.Metric) bool {
		dps, ok := numberPoints(m)
		if !ok {
			return true
		}
		from := len(b.keys)
		b.keys = metricKey(b.keys, m.Name(), job, instance)
		prefix := b.keys[from:] // stays valid when b.keys grows: the old array is kept
		for p := range dps.Len() {
			if p > 0 {
				b.keys = append(b.keys, prefix...)
			}
			b.keys = appendAttrKey(b.keys, dps.At(p).Attributes())
			b.ends = append(b.ends, len(b.keys))
		}
		return true
	})
	b.look = slices.Grow(b.look[:0], len(b.ends))[:len(b.ends)]
	from := 0
	for i, end := range b.ends {
		key := b.keys[from:end]
		b.look[i] = cacheLookup{fp: cache.fingerprint(key)}
		from = end
	}
	b.order = cache.getBatch(b.look, b.order)
	return b.look
}

// rwMetadata is the metadata the sender declared; zero when it declared none.
func rwMetadata(m pmetric.Metric) metadata.Metadata {
	typ, ok := m.Metadata().Get(passthrough.KeyType)
	if !ok && m.Unit() == "" && m.Description() == "" {
		return metadata.Metadata{}
	}
	t := model.MetricType(typ.Str())
	if t == "" {
		t = model.MetricTypeUnknown
	}
	return metadata.Metadata{Type: t, Unit: m.Unit(), Help: m.Description()}
}

type rwMetric struct {
	app   *countingAppender
	b     *labels.ScratchBuilder
	cache *seriesCache
	m     pmetric.Metric
	// look holds the series of the metric's data points, looked up before (lookupNumbers);
	// nil when they are looked up one by one.
	look          []cacheLookup
	attrs         pcommon.Map // the attributes of the data point being appended
	job, instance string
	opts          promstorage.AOptions

	// key is the identity of the current data point, as seriesCache knows it: the metric name,
	// job and instance (the first prefix bytes, the same for every point of the metric), then
	// the name and value of each attribute that becomes a label, in the order of the attributes.
	// Every string is length-prefixed, so different identities never encode the same.
	key    []byte
	prefix int
	fp     fingerprint // of key
}

func appendKeyString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// series makes attrs those of the data point being appended and returns the ref the store gave
// its series when the cache knows it.
func (w *rwMetric) series(attrs pcommon.Map) (ref promstorage.SeriesRef, cached bool) {
	w.attrs = attrs
	if w.cache == nil {
		return 0, false
	}
	w.key = appendAttrKey(w.key[:w.prefix], attrs)
	w.fp = w.cache.fingerprint(w.key)
	return w.cache.get(w.fp)
}

// appendAttrKey appends the attributes of a data point to its key (see rwMetric.key).
func appendAttrKey(key []byte, attrs pcommon.Map) []byte {
	attrs.Range(func(k string, v pcommon.Value) bool {
		switch k {
		case model.MetricNameLabel, model.JobLabel, model.InstanceLabel:
			return true
		}
		if s := v.AsString(); s != "" {
			key = appendKeyString(appendKeyString(key, k), s)
		}
		return true
	})
	return key
}

// append appends one sample of the data point whose attributes are w.attrs and whose identity's
// fingerprint is fp, ref and cached being what the cache knows of it (appendCached).
func (w *rwMetric) append(fp fingerprint, ref promstorage.SeriesRef, cached bool, st, t int64, v float64, hist *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) error {
	l := cacheLookup{fp: fp, ref: ref, found: cached}
	return appendCached(w.app, w.cache, w, &l, st, t, v, hist, fh, opts)
}

// appendCached appends one sample of the series of lookup l: by the ref the cache gave when
// found, else by the labels src builds; and keeps the store's ref for it, in the cache (when
// not nil) and in l, for the series' next sample.
func appendCached(app *countingAppender, cache *seriesCache, src labelSource, l *cacheLookup, st, t int64, v float64, hist *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) error {
	var got promstorage.SeriesRef
	var err error
	if l.found {
		got, err = app.appendRef(l.ref, src, st, t, v, hist, fh, opts)
	} else {
		got, err = app.Append(0, src.seriesLabels(), st, t, v, hist, fh, opts)
	}
	if err != nil || got == 0 || (l.found && got == l.ref) {
		return err
	}
	l.ref, l.found = got, true
	if cache != nil {
		cache.put(l.fp, got)
	}
	return nil
}

// seriesLabels builds the labels of the data point being appended (labelSource).
func (w *rwMetric) seriesLabels() labels.Labels { return w.labels(w.attrs) }

// labels builds the labels of a data point with attrs. They are never a reused buffer: the store
// keeps them.
func (w *rwMetric) labels(attrs pcommon.Map) labels.Labels {
	w.b.Reset()
	w.b.Add(model.MetricNameLabel, w.m.Name())
	if w.job != "" {
		w.b.Add(model.JobLabel, w.job)
	}
	if w.instance != "" {
		w.b.Add(model.InstanceLabel, w.instance)
	}
	attrs.Range(func(k string, v pcommon.Value) bool {
		switch k {
		case model.MetricNameLabel, model.JobLabel, model.InstanceLabel:
			return true
		}
		if s := v.AsString(); s != "" {
			w.b.Add(k, s)
		}
		return true
	})
	w.b.Sort()
	return w.b.Labels()
}

func (w *rwMetric) write() error {
	switch w.m.Type() {
	case pmetric.MetricTypeGauge:
		return w.numbers(w.m.Gauge().DataPoints())
	case pmetric.MetricTypeSum:
		return w.numbers(w.m.Sum().DataPoints())
	case pmetric.MetricTypeExponentialHistogram:
		dps := w.m.ExponentialHistogram().DataPoints()
		return writeHistograms(w, dps.Len(), dps.At)
	case pmetric.MetricTypeHistogram:
		dps := w.m.Histogram().DataPoints()
		return writeHistograms(w, dps.Len(), dps.At)
	default:
		return fmt.Errorf("remote write metric %q: unexpected type %s", w.m.Name(), w.m.Type())
	}
}

func (w *rwMetric) numbers(dps pmetric.NumberDataPointSlice) error {
	for i := range dps.Len() {
		dp := dps.At(i)
		v := dp.DoubleValue()
		if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
			v = float64(dp.IntValue())
		}
		if dp.Flags().NoRecordedValue() {
			v = math.Float64frombits(value.StaleNaN)
		}
		opts := w.opts
		opts.Exemplars = rwExemplars(dp.Exemplars())
		var l cacheLookup
		switch {
		case w.look == nil:
			l.ref, l.found = w.series(dp.Attributes())
			l.fp = w.fp
		case !w.look[i].found:
			// An earlier point of the request may have been of the same series (several
			// samples of one series in a request) and cached it since.
			l = w.look[i]
			l.ref, l.found = w.cache.get(l.fp)
		default:
			l = w.look[i]
		}
		w.attrs = dp.Attributes()
		if err := w.append(l.fp, l.ref, l.found, nsToMs(dp.StartTimestamp()), nsToMs(dp.Timestamp()), v, nil, nil, opts); err != nil {
			return err
		}
	}
	return nil
}

// histogramPoint is what exponential and explicit-bucket histogram data points share.
type histogramPoint interface {
	Attributes() pcommon.Map
	Timestamp() pcommon.Timestamp
	Exemplars() pmetric.ExemplarSlice
}

// writeHistograms appends n histogram data points; a point that cannot be restored is reported
// and the others are still written, unless the store failed.
func writeHistograms[P histogramPoint](w *rwMetric, n int, at func(int) P) error {
	var errs []error
	for i := range n {
		dp := at(i)
		if err := w.histogram(i, dp.Attributes(), dp.Timestamp(), dp.Exemplars()); err != nil {
			if w.app.fatal != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// histogram appends data point i of a histogram metric from its exact encoding.
func (w *rwMetric) histogram(i int, attrs pcommon.Map, ts pcommon.Timestamp, exs pmetric.ExemplarSlice) error {
	ref, cached := w.series(attrs)
	enc, ok := w.m.Metadata().Get(passthrough.KeyNativeHistograms)
	if !ok || enc.Type() != pcommon.ValueTypeSlice || i >= enc.Slice().Len() {
		return fmt.Errorf("remote write series %s at %d: native histogram without its exact encoding", w.seriesLabels().String(), nsToMs(ts))
	}
	var h writev2.Histogram
	if err := h.Unmarshal(enc.Slice().At(i).Bytes().AsRaw()); err != nil || h.Timestamp != nsToMs(ts) {
		return fmt.Errorf("remote write series %s at %d: native histogram encoding does not match the data point", w.seriesLabels().String(), nsToMs(ts))
	}
	opts := w.opts
	opts.Exemplars = rwExemplars(exs)
	if h.IsFloatHistogram() {
		return w.append(w.fp, ref, cached, h.StartTimestamp, h.Timestamp, 0, nil, h.ToFloatHistogram(), opts)
	}
	return w.append(w.fp, ref, cached, h.StartTimestamp, h.Timestamp, 0, h.ToIntHistogram(), nil, opts)
}

func rwExemplars(exs pmetric.ExemplarSlice) []exemplar.Exemplar {
	if exs.Len() == 0 {
		return nil
	}
	out := make([]exemplar.Exemplar, 0, exs.Len())
	for i := range exs.Len() {
		e := exs.At(i)
		b := labels.NewScratchBuilder(e.FilteredAttributes().Len())
		e.FilteredAttributes().Range(func(k string, v pcommon.Value) bool {
			b.Add(k, v.AsString())
			return true
		})
		b.Sort()
		v := e.DoubleValue()
		if e.ValueType() == pmetric.ExemplarValueTypeInt {
			v = float64(e.IntValue())
		}
		ts := nsToMs(e.Timestamp())
		out = append(out, exemplar.Exemplar{Labels: b.Labels(), Value: v, Ts: ts, HasTs: ts != 0})
	}
	slices.SortFunc(out, exemplar.Compare)
	return out
}

func nsToMs(ts pcommon.Timestamp) int64 { return int64(ts / 1e6) }
