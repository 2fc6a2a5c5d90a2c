package receiver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

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

	"github.com/metricstor/metricstor/internal/passthrough"
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

// metaHit is the outcome of one metadata cache lookup.
type metaHit struct {
	family string
	meta   metadata.Metadata
	ok     bool
}

// converter turns one request into pmetric.Metrics: a resource per (job, instance), one scope
// (the receiver's), a metric per (series name, kind). One request uses it at a time; between
// requests it waits in converterPool with its buffers and maps kept, emptied.
type converter struct {
	meta      *metadataCache
	md        pmetric.Metrics
	resources map[resourceKey]pmetric.MetricSlice
	metrics   map[metricKey]pmetric.Metric
	// lastKey and lastMetric remember the previous series' metric: senders tend to send the
	// series of one metric one after the other.
	lastKey    metricKey
	lastMetric pmetric.Metric
	hasLast    bool
	// metaHits memoises metadata cache lookups for this request, by series name; lastName and
	// lastHit the latest of them, as the series of one metric come one after the other.
	metaHits map[string]metaHit
	lastName string
	lastHit  metaHit
	hasHit   bool
	builder  labels.ScratchBuilder
	v1       v1Request
	// v2 is the 2.0 request, decoded by decodeV2 into v2buf's arrays. Reused, the series slice
	// (176 bytes a series) is not grown again for every request. Histograms are decoded into
	// fresh values, so the pipeline data of an earlier request never shares memory with a later
	// one.
	v2    writev2.Request
	v2buf v2Buffers
	s     series // the series being converted
	// req1 or req2 is the request being converted and at the index of the series being
	// converted, for newMetric's look ahead (samplesAhead).
	req1 *v1Request
	req2 *writev2.Request
	at   int
	// v2samples holds the samples of the 2.0 series being converted.
	v2samples []sampleV

	// direct: the valid series are kept for a passthrough.SeriesWriter (directSeries) instead of
	// becoming pipeline data in md. Set before a request is converted.
	direct bool
	dir    directBuffers

	samples, histograms, exemplars int      // what goes into the pipeline
	rejectedSamples                int      // samples, histograms and exemplars of rejected series
	errs                           []string // one line per rejected series
}

// Bounds of what a pooled converter keeps for the next request. The slices of a larger request
// go with it: max_series_per_request lets a request carry a million series (176 MB of 2.0 series
// structs), and a converter in the pool is taken again by the next request, so what it holds
// would stay for good. Senders batch a few thousand series (Prometheus: 2,000 samples a request).
const (
	maxPooledSeries = 10_000
	maxPooledItems  = 100_000 // labels, samples, symbols
)

var converterPool = sync.Pool{New: func() any {
	return &converter{
		resources: map[resourceKey]pmetric.MetricSlice{},
		metrics:   map[metricKey]pmetric.Metric{},
		metaHits:  map[string]metaHit{},
		builder:   labels.NewScratchBuilder(8),
	}
}}

func newConverter(meta *metadataCache) *converter {
	c := converterPool.Get().(*converter)
	c.meta = meta
	c.md = pmetric.NewMetrics()
	return c
}

// release empties c and returns it to the pool. Nothing of the request may be used afterwards
// except c.md, which the converter no longer refers to.
func (c *converter) release() {
	clear(c.resources)
	clear(c.metrics)
	clear(c.metaHits)
	c.lastName, c.lastHit, c.hasHit = "", metaHit{}, false
	c.lastKey, c.lastMetric, c.hasLast = metricKey{}, pmetric.Metric{}, false
	c.req1, c.req2, c.at = nil, nil, 0
	c.v1.reset()
	c.resetV2()
	c.direct = false
	c.dir.reset()
	c.s.reset()
	c.meta, c.md = nil, pmetric.Metrics{}
	c.samples, c.histograms, c.exemplars, c.rejectedSamples = 0, 0, 0, 0
	c.errs = c.errs[:0]
	converterPool.Put(c)
}

// resetV2 empties the 2.0 request for the next one, keeping its slices' arrays unless they are
// past the pool's bounds (maxPooledSeries).
func (c *converter) resetV2() {
	c.v2buf.reset()
	if cap(c.v2.Timeseries) > maxPooledSeries || cap(c.v2.Symbols) > maxPooledItems {
		c.v2 = writev2.Request{}
		return
	}
	clear(c.v2.Symbols)
	clear(c.v2.Timeseries)
	c.v2 = writev2.Request{Symbols: c.v2.Symbols[:0], Timeseries: c.v2.Timeseries[:0]}
}

// series is one decoded time series, whatever the protocol version. Its slices are reused from
// series to series.
type series struct {
	// lbls are the labels as sent (empty values included), sorted by name by validate. The
	// strings belong to the request (its label buffer or 2.0 symbols).
	lbls []label
	// ascii: every byte of the label names and values is below 0x80, so they are valid UTF-8
	// (the 1.0 decoder finds it out while it reads them, fromV2 from the symbol table, a
	// SeriesBatch from the labels given; false when unknown).
	ascii               bool
	name, job, instance string // set by validate
	meta                metadata.Metadata
	hasMeta             bool
	family              string
	samples             []sampleV
	histograms          []histV
	exemplars           []exemplar.Exemplar
}

func (s *series) reset() {
	// Field by field rather than assigning a whole series: the struct copy went through the
	// bulk write barrier while the GC runs, which is often at this allocation rate.
	if len(s.histograms) > 0 {
		clear(s.histograms)
		s.histograms = s.histograms[:0]
	}
	if len(s.exemplars) > 0 {
		clear(s.exemplars)
		s.exemplars = s.exemplars[:0]
	}
	s.lbls = s.lbls[:0]
	s.ascii = false
	s.name, s.job, s.instance = "", "", ""
	s.meta, s.hasMeta, s.family = metadata.Metadata{}, false, ""
	s.samples = nil
}

// labels builds the Prometheus label set of s, for messages and the slow validation path.
func (s *series) labels(b *labels.ScratchBuilder) labels.Labels {
	b.Reset()
	for _, l := range s.lbls {
		b.Add(l.name, l.value)
	}
	b.Sort()
	return b.Labels()
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

// fromV1 converts a decoded 1.0 request whose strings belong to the request.
func (c *converter) fromV1(req *v1Request) {
	// Metadata first: Prometheus sends it in requests of its own, so it is remembered for the
	// series of later requests as well. Its strings were copied by prompb's Unmarshal, so the
	// long-lived cache does not keep the request's label buffer alive.
	for _, m := range req.metadata {
		if m.MetricFamilyName == "" {
			continue
		}
		c.meta.put(m.MetricFamilyName, metadata.Metadata{
			Type: prompbMetricType(m.Type),
			Unit: m.Unit,
			Help: m.Help,
		})
	}
	// The series' labels are used where the decoder put them (validate sorts them there): no
	// copy. s.lbls gets its own buffer back afterwards, for the callers that append to it.
	own := c.s.lbls[:0]
	defer func() { c.s.lbls = own }()
	c.req1 = req
	for i := range req.series {
		c.at = i
		rs := &req.series[i]
		s := &c.s
		s.reset()
		s.lbls = req.labels[rs.labels.lo:rs.labels.hi:rs.labels.hi]
		s.ascii = rs.ascii
		s.samples = req.samples[rs.samples.lo:rs.samples.hi]
		for _, h := range req.histograms[rs.histograms.lo:rs.histograms.hi] {
			hv := histV{t: h.Timestamp}
			if h.IsFloatHistogram() {
				hv.fh = h.ToFloatHistogram()
			} else {
				hv.h = h.ToIntHistogram()
			}
			s.histograms = append(s.histograms, hv)
		}
		for _, e := range req.exemplars[rs.exemplars.lo:rs.exemplars.hi] {
			s.exemplars = append(s.exemplars, e.ToExemplar(&c.builder, nil))
		}
		hit := c.lookupMeta(labelValue(s.lbls, model.MetricNameLabel))
		s.family, s.meta, s.hasMeta = hit.family, hit.meta, hit.ok
		c.addSeries(s, len(s.samples)+len(s.histograms)+len(s.exemplars))
	}
}

// lookupMeta finds the 1.0 metadata of a series name, asking the shared cache once per name
// and request.
func (c *converter) lookupMeta(name string) metaHit {
	if c.hasHit && name == c.lastName {
		return c.lastHit
	}
	hit, ok := c.metaHits[name]
	if !ok {
		hit.family, hit.meta, hit.ok = c.meta.lookup(name)
		c.metaHits[name] = hit
	}
	c.lastName, c.lastHit, c.hasHit = name, hit, true
	return hit
}

func labelValue(ls []label, name string) string {
	for _, l := range ls {
		if l.name == name {
			return l.value
		}
	}
	return ""
}

func (c *converter) fromV2(req *writev2.Request) {
	c.req2 = req
	// Every label name and value is a symbol: when all symbols are ASCII, so is every series.
	var high uint64
	for _, sym := range req.Symbols {
		high |= highBitsString(sym)
	}
	for i := range req.Timeseries {
		c.at = i
		ts := &req.Timeseries[i]
		n := len(ts.Samples) + len(ts.Histograms) + len(ts.Exemplars)
		s := &c.s
		s.reset()
		s.ascii = high == 0
		if !symbolLabels(s, ts.LabelsRefs, req.Symbols) {
			_, err := ts.ToLabels(&c.builder, req.Symbols)
			if err == nil {
				err = errors.New("invalid label references")
			}
			c.reject(n, fmt.Sprintf("series %d: labels: %v", i, err))
			continue
		}
		m, err := ts.ToMetadata(req.Symbols)
		if err != nil {
			c.reject(n, fmt.Sprintf("series %s: metadata: %v", s.labels(&c.builder).String(), err))
			continue
		}
		s.meta = m
		s.hasMeta = m.Type != model.MetricTypeUnknown || m.Unit != "" || m.Help != ""
		s.family = familyOf(labelValue(s.lbls, model.MetricNameLabel), m.Type)
		if len(ts.Samples) == 0 && len(ts.Histograms) == 0 {
			c.reject(n, fmt.Sprintf("series %s: must contain at least one sample or histogram", s.labels(&c.builder).String()))
			continue
		}
		c.v2samples = c.v2samples[:0]
		for _, smp := range ts.Samples {
			c.v2samples = append(c.v2samples, sampleV{st: smp.StartTimestamp, t: smp.Timestamp, v: smp.Value})
		}
		s.samples = c.v2samples
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
				c.reject(n, fmt.Sprintf("series %s: exemplar: %v", s.labels(&c.builder).String(), err))
				exemplarsOK = false
				break
			}
			s.exemplars = append(s.exemplars, ex)
		}
		if exemplarsOK {
			c.addSeries(s, n)
		}
	}
}

// symbolLabels resolves 2.0 label references into s.lbls; false when they are not pairs or point
// outside the symbol table.
func symbolLabels(s *series, refs []uint32, symbols []string) bool {
	if len(refs)%2 != 0 {
		return false
	}
	for j := 0; j < len(refs); j += 2 {
		n, v := refs[j], refs[j+1]
		if int(n) >= len(symbols) || int(v) >= len(symbols) {
			return false
		}
		s.lbls = append(s.lbls, label{name: symbols[n], value: symbols[v]})
	}
	return true
}

func (c *converter) reject(n int, msg string) {
	c.rejectedSamples += n
	c.errs = append(c.errs, msg)
}

// validate applies Prometheus's rules for a remote-written series: a metric name, valid UTF-8
// label names and values, no empty or duplicate label names; timestamps pmetric can hold;
// valid native histograms. It sorts s.lbls by name and sets s.name, s.job and s.instance.
func (c *converter) validate(s *series) error {
	if !s.checkLabels() {
		// Build the label set only to say what is wrong, with the same words as always.
		ls := s.labels(&c.builder)
		if !ls.Has(model.MetricNameLabel) || ls.Get(model.MetricNameLabel) == "" {
			return fmt.Errorf("series %s: missing metric name (label __name__)", ls.String())
		}
		if !ls.IsValid(model.UTF8Validation) {
			return fmt.Errorf("series %s: invalid label name or value (empty name, or not UTF-8)", ls.String())
		}
		if name, dup := ls.HasDuplicateLabelNames(); dup {
			return fmt.Errorf("series %s: duplicate label name %q", ls.String(), name)
		}
		return fmt.Errorf("series %s: invalid labels", ls.String())
	}
	checkTS := func(t int64, what string) error {
		if t < 0 || t > maxTimestampMs {
			return fmt.Errorf("series %s: %s timestamp %d out of range (0 to %d ms since 1970)", s.labels(&c.builder).String(), what, t, maxTimestampMs)
		}
		return nil
	}
	for _, smp := range s.samples {
		if uint64(smp.t) > uint64(maxTimestampMs) || uint64(smp.st) > uint64(maxTimestampMs) {
			if err := checkTS(smp.t, "sample"); err != nil {
				return err
			}
			return checkTS(smp.st, "start")
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
			return fmt.Errorf("series %s: invalid native histogram at %d: %w", s.labels(&c.builder).String(), h.t, err)
		}
		if lo, hi, ok := bucketRange(h); ok && hi-lo >= maxDenseBuckets {
			return fmt.Errorf("series %s: native histogram at %d spans %d buckets (at most %d)", s.labels(&c.builder).String(), h.t, hi-lo+1, maxDenseBuckets)
		}
	}
	for _, e := range s.exemplars {
		if err := checkTS(e.Ts, "exemplar"); err != nil {
			return err
		}
	}
	return nil
}

// checkLabels sorts s.lbls by name and tells whether they are valid: a non-empty __name__, no
// empty label name, UTF-8 names and values, no name twice. It is the fast path of validate and
// agrees with the checks there on labels.Labels.
func (s *series) checkLabels() bool {
	ls := s.lbls
	if !slices.IsSortedFunc(ls, compareLabelNames) {
		slices.SortStableFunc(ls, compareLabelNames)
	}
	for i, l := range ls {
		if l.name == "" || (!s.ascii && (!utf8.ValidString(l.name) || !utf8.ValidString(l.value))) {
			return false
		}
		if i > 0 && ls[i-1].name == l.name {
			return false
		}
		switch l.name {
		case model.MetricNameLabel:
			s.name = l.value
		case model.JobLabel:
			s.job = l.value
		case model.InstanceLabel:
			s.instance = l.value
		}
	}
	return s.name != ""
}

func compareLabelNames(a, b label) int { return strings.Compare(a.name, b.name) }

func (c *converter) addSeries(s *series, n int) {
	if err := c.validate(s); err != nil {
		c.reject(n, err.Error())
		return
	}
	if c.direct {
		c.addDirect(s)
	} else {
		c.addPipelineData(s)
	}
	c.samples += len(s.samples)
	c.histograms += len(s.histograms)
	c.exemplars += len(s.exemplars)
	if len(s.samples) == 0 && len(s.histograms) == 0 && len(s.exemplars) > 0 {
		// 1.0 allows exemplars without samples; they have nothing to ride on through the pipeline.
		c.exemplars -= len(s.exemplars)
		c.reject(len(s.exemplars), fmt.Sprintf("series %s: exemplars without a sample in the same series are not supported", s.labels(&c.builder).String()))
	}
}

// addPipelineData adds the valid series s to the pipeline data.
func (c *converter) addPipelineData(s *series) {
	rk := resourceKey{job: s.job, instance: s.instance}

	if len(s.samples) > 0 {
		kind := kindGauge
		if s.hasMeta && s.meta.Type == model.MetricTypeCounter {
			kind = kindSum
		}
		m := c.metric(rk, s.name, kind, s)
		var dps pmetric.NumberDataPointSlice
		if kind == kindSum {
			dps = m.Sum().DataPoints()
		} else {
			dps = m.Gauge().DataPoints()
		}
		for i, smp := range s.samples {
			dp := dps.AppendEmpty()
			putAttributes(dp.Attributes(), s.lbls)
			dp.SetTimestamp(msToTimestamp(smp.t))
			if smp.st != 0 {
				dp.SetStartTimestamp(msToTimestamp(smp.st))
			}
			dp.SetDoubleValue(smp.v)
			if value.IsStaleNaN(smp.v) {
				dp.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			}
			if i == len(s.samples)-1 && len(s.exemplars) > 0 {
				putExemplars(dp.Exemplars(), s.exemplars)
			}
		}
	}
	for i, h := range s.histograms {
		custom := (h.h != nil && histogram.IsCustomBucketsSchema(h.h.Schema)) || (h.fh != nil && histogram.IsCustomBucketsSchema(h.fh.Schema))
		kind := kindExponential
		if custom {
			kind = kindCustomBuckets
		}
		m := c.metric(rk, s.name, kind, s)
		ex := s.exemplars
		if len(s.samples) > 0 || i != len(s.histograms)-1 {
			ex = nil // exemplars go with the last sample of the series
		}
		c.addHistogram(m, kind, s.lbls, h, ex)
	}
}

// metric returns the metric of (resource, name, kind), creating resource and metric as needed.
func (c *converter) metric(rk resourceKey, name string, kind metricKind, s *series) pmetric.Metric {
	key := metricKey{res: rk, name: name, kind: kind}
	if c.hasLast && key == c.lastKey {
		return c.lastMetric
	}
	m, ok := c.metrics[key]
	if !ok {
		m = c.newMetric(key, s)
		c.metrics[key] = m
	}
	c.lastKey, c.lastMetric, c.hasLast = key, m, true
	return m
}

// newMetric appends the metric of key to its resource, creating the resource as needed.
func (c *converter) newMetric(key metricKey, s *series) pmetric.Metric {
	rk, name, kind := key.res, key.name, key.kind
	ms, ok := c.resources[rk]
	if !ok {
		rm := c.md.ResourceMetrics().AppendEmpty()
		attrs := rm.Resource().Attributes()
		if rk.job != "" {
			attrs.PutStr(passthrough.JobAttribute, rk.job)
		}
		if rk.instance != "" {
			attrs.PutStr(passthrough.InstanceAttribute, rk.instance)
		}
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(passthrough.ScopeName)
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
		m.Metadata().PutStr(passthrough.KeyType, string(typ))
		if s.family != "" && s.family != name {
			m.Metadata().PutStr(passthrough.KeyFamily, s.family)
		}
	}
	switch kind {
	case kindGauge:
		m.SetEmptyGauge().DataPoints().EnsureCapacity(c.samplesAhead(key))
	case kindSum:
		sum := m.SetEmptySum()
		sum.SetIsMonotonic(true)
		sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		sum.DataPoints().EnsureCapacity(c.samplesAhead(key))
	case kindExponential:
		m.SetEmptyExponentialHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case kindCustomBuckets:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	return m
}

// samplesAhead counts the samples of the series of key's name, job and instance from the one
// being converted on, up to the first series with another: senders send the series of a metric
// one after the other, so this is usually how many data points the metric being created will
// hold. Sizing its slice of data points once saves growing it (1, 2, 4, ...: about four
// allocations a metric). The run of one metric ends where the next metric's begins, so the
// look-ahead reads each series at most twice in a request; a run of one name across many
// targets (`up` of each, as a federating sender may order them) is many metrics, each sized
// for its own series. An estimate: series that validation rejects, or of the same name, job
// and instance and another kind, are counted too.
func (c *converter) samplesAhead(key metricKey) int {
	same := func(name, job, instance string) bool {
		return name == key.name && job == key.res.job && instance == key.res.instance
	}
	n := 0
	switch {
	case c.req1 != nil:
		req := c.req1
		for _, rs := range req.series[c.at:] {
			if !same(seriesKey(req.labels[rs.labels.lo:rs.labels.hi])) {
				break
			}
			n += int(rs.samples.hi - rs.samples.lo)
		}
	case c.req2 != nil:
		req := c.req2
		for i := c.at; i < len(req.Timeseries); i++ {
			ts := &req.Timeseries[i]
			if !same(seriesKeyV2(ts.LabelsRefs, req.Symbols)) {
				break
			}
			n += len(ts.Samples)
		}
	}
	return n
}

// seriesKey returns the values of the __name__, job and instance labels ("" where absent), as
// validate sets them.
func seriesKey(ls []label) (name, job, instance string) {
	for _, l := range ls {
		switch l.name {
		case model.MetricNameLabel:
			name = l.value
		case model.JobLabel:
			job = l.value
		case model.InstanceLabel:
			instance = l.value
		}
	}
	return name, job, instance
}

// seriesKeyV2 is seriesKey for 2.0 label references; references outside the symbols are skipped.
func seriesKeyV2(refs []uint32, symbols []string) (name, job, instance string) {
	for j := 0; j+1 < len(refs); j += 2 {
		n, v := refs[j], refs[j+1]
		if int(n) >= len(symbols) || int(v) >= len(symbols) {
			continue
		}
		switch symbols[n] {
		case model.MetricNameLabel:
			name = symbols[v]
		case model.JobLabel:
			job = symbols[v]
		case model.InstanceLabel:
			instance = symbols[v]
		}
	}
	return name, job, instance
}

// addHistogram appends one native histogram: a pmetric view (exponential or explicit buckets,
// counts rounded for float histograms) and the exact histogram in passthrough.KeyNativeHistograms.
func (c *converter) addHistogram(m pmetric.Metric, kind metricKind, ls []label, h histV, ex []exemplar.Exemplar) {
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
	if v, ok := enc.Get(passthrough.KeyNativeHistograms); ok {
		list = v.Slice()
	} else {
		list = enc.PutEmptySlice(passthrough.KeyNativeHistograms)
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
func putAttributes(attrs pcommon.Map, ls []label) {
	n := 0
	for _, l := range ls {
		if isAttribute(l) {
			n++
		}
	}
	attrs.EnsureCapacity(n) // exactly: an attribute is 40 bytes, most labels of a series are not
	for _, l := range ls {
		if isAttribute(l) {
			attrs.PutStr(l.name, l.value)
		}
	}
}

func isAttribute(l label) bool {
	switch l.name {
	case model.MetricNameLabel, model.JobLabel, model.InstanceLabel:
		return false
	}
	return l.value != ""
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
