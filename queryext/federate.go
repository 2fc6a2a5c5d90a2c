package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/protobuf/proto"
)

// federateHandler serves /federate as Prometheus's web/federate.go does (its handler is a method
// of Prometheus's whole web UI, so it is written again here, following it step by step): for each
// series selected by the match[] selectors, the latest sample within the lookback delta before
// now, in the exposition format the Accept header asks for (protobuf, else text), grouped by
// metric name into untyped families (native histograms: histogram or gaugehistogram families,
// protobuf only). Stale markers are skipped: the exposition formats cannot carry them. Metricstor
// has no external labels, so only Prometheus's empty `instance` label is added to series
// without one, which keeps a scraper with honor_labels from setting its own.
type federateHandler struct {
	queryable promstorage.Queryable
	parser    parser.Parser
	lookback  time.Duration
	logger    *slog.Logger
	now       func() time.Time // time.Now; tests fix it

	errs, warnings prometheus.Counter
}

func newFederateHandler(q promstorage.Queryable, p parser.Parser, lookback time.Duration, logger *slog.Logger, reg prometheus.Registerer) *federateHandler {
	h := &federateHandler{
		queryable: q, parser: p, lookback: lookback, logger: logger, now: time.Now,
		// Prometheus's own names, served with the API's other metrics at /api/v1/status/self_metrics.
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prometheus_web_federation_errors_total",
			Help: "Total number of errors that occurred while sending federation responses.",
		}),
		warnings: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prometheus_web_federation_warnings_total",
			Help: "Total number of warnings that occurred while sending federation responses.",
		}),
	}
	reg.MustRegister(h.errs, h.warnings)
	return h
}

func (h *federateHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil {
		http.Error(w, fmt.Sprintf("error parsing form values: %v", err), http.StatusBadRequest)
		return
	}
	// No match[] selects nothing (an empty answer), as in Prometheus.
	matcherSets, err := h.parser.ParseMetricSelectors(req.Form["match[]"])
	if err != nil {
		http.Error(w, fmt.Sprintf("invalid parameter \"match[]\": %v", err), http.StatusBadRequest)
		return
	}
	// As the API's match[] (Prometheus's federation leaves this out): a selector of matchers
	// that all match the empty string would select every series, `{}` included.
	for _, ms := range matcherSets {
		if !slices.ContainsFunc(ms, func(m *labels.Matcher) bool { return !m.Matches("") }) {
			http.Error(w, `invalid parameter "match[]": match[] must contain at least one non-empty matcher`, http.StatusBadRequest)
			return
		}
	}

	now := h.now()
	mint, maxt := now.Add(-h.lookback).UnixMilli(), now.UnixMilli()
	format := expfmt.NegotiateAccept(req.Header, expfmt.NewFormat(expfmt.TypeProtoDelim),
		expfmt.NewFormat(expfmt.TypeProtoText), expfmt.NewFormat(expfmt.TypeProtoCompact), expfmt.NewFormat(expfmt.TypeTextPlain))

	vec, err := h.latest(req, matcherSets, mint, maxt)
	if err != nil {
		h.errs.Inc()
		code := http.StatusInternalServerError
		if errors.Is(err, tsdb.ErrNotReady) {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}

	w.Header().Set("Content-Type", string(format))
	if err := encodeFederation(expfmt.NewEncoder(w, format), format.FormatType(), vec); err != nil {
		// The answer has started: all that is left is to count and log it.
		h.errs.Inc()
		h.logger.Error("federation failed", "err", err)
	}
}

// latest returns the latest sample of each selected series in [mint, maxt], stale markers left
// out, sorted by metric name (and by labels within a name).
func (h *federateHandler) latest(req *http.Request, matcherSets [][]*labels.Matcher, mint, maxt int64) (promql.Vector, error) {
	q, err := h.queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer q.Close()

	ctx := req.Context()
	hints := &promstorage.SelectHints{Start: mint, End: maxt}
	sets := make([]promstorage.SeriesSet, 0, len(matcherSets))
	for _, ms := range matcherSets {
		sets = append(sets, q.Select(ctx, true, hints, ms...))
	}
	// Sorted sets merged: a series selected by two match[] comes once.
	set := promstorage.NewMergeSeriesSet(sets, 0, promstorage.ChainedSeriesMerge)

	var vec promql.Vector
	it := promstorage.NewBuffer(h.lookback.Milliseconds())
	var chkIter chunkenc.Iterator
	for set.Next() {
		s := set.At()
		chkIter = s.Iterator(chkIter)
		it.Reset(chkIter)

		var (
			t  int64
			f  float64
			fh *histogram.FloatHistogram
		)
		// A sample at maxt exactly is the latest; otherwise the last one before it.
		switch it.Seek(maxt) {
		case chunkenc.ValFloat:
			t, f = it.At()
		case chunkenc.ValFloatHistogram, chunkenc.ValHistogram:
			t, fh = it.AtFloatHistogram(nil)
		default:
			sample, ok := it.PeekBack(1)
			if !ok {
				continue // no sample in the lookback window
			}
			t = sample.T()
			switch sample.Type() {
			case chunkenc.ValFloat:
				f = sample.F()
			case chunkenc.ValHistogram:
				fh = sample.H().ToFloat(nil) // a copy: the buffer is reused
			case chunkenc.ValFloatHistogram:
				fh = sample.FH().Copy()
			default:
				continue
			}
		}
		if err := it.Err(); err != nil {
			return nil, err
		}
		// The exposition formats cannot carry a stale marker; the scraper's own staleness
		// handling ends the series once it is no longer exposed.
		if value.IsStaleNaN(f) || (fh != nil && value.IsStaleNaN(fh.Sum)) {
			continue
		}
		vec = append(vec, promql.Sample{Metric: s.Labels(), T: t, F: f, H: fh})
	}
	if ws := set.Warnings(); len(ws) > 0 {
		h.logger.Debug("Federation select returned warnings", "warnings", ws)
		h.warnings.Add(float64(len(ws)))
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	// Families are built from consecutive samples of one name. The merged set is sorted by
	// labels; a stable sort by name keeps that order within a family (Prometheus's sort is not
	// stable, so its order within a family may vary).
	slices.SortStableFunc(vec, func(a, b promql.Sample) int {
		return strings.Compare(a.Metric.Get(labels.MetricName), b.Metric.Get(labels.MetricName))
	})
	return vec, nil
}

// encodeFederation writes vec as metric families, as Prometheus's federation does: one family
// per run of samples of the same name and kind (float, or histogram of the same counter/gauge
// kind), floats untyped, native histograms only in the protobuf formats.
func encodeFederation(enc expfmt.Encoder, formatType expfmt.FormatType, vec promql.Vector) error {
	protobuf := formatType == expfmt.TypeProtoDelim || formatType == expfmt.TypeProtoText || formatType == expfmt.TypeProtoCompact
	var (
		fam                                     *dto.MetricFamily
		lastName                                string
		lastWasHistogram, lastHistogramWasGauge bool
	)
	for _, s := range vec {
		isHistogram := s.H != nil
		if isHistogram && !s.H.UsesCustomBuckets() && !protobuf {
			// The text format has no native histograms (Prometheus leaves them out too); a
			// histogram with custom buckets is sent as the classic histogram it came from.
			continue
		}
		name := s.Metric.Get(labels.MetricName)
		if name == "" {
			continue // nameless: no family to put it in (Prometheus logs and skips it)
		}
		isGauge := isHistogram && s.H.CounterResetHint == histogram.GaugeType
		if fam == nil || name != lastName || isHistogram != lastWasHistogram || (isHistogram && isGauge != lastHistogramWasGauge) {
			// Prometheus starts a new family when the kind changes under the same name: not
			// strictly a valid exposition, but Prometheus parses it, and it is its consumer.
			if fam != nil {
				if err := enc.Encode(fam); err != nil {
					return err
				}
			}
			fam = &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_UNTYPED.Enum()}
			if isHistogram {
				fam.Type = dto.MetricType_HISTOGRAM.Enum()
				if isGauge {
					fam.Type = dto.MetricType_GAUGE_HISTOGRAM.Enum()
				}
			}
			lastName = name
		}
		lastWasHistogram, lastHistogramWasGauge = isHistogram, isGauge

		m := &dto.Metric{TimestampMs: proto.Int64(s.T)}
		hasInstance := false
		s.Metric.Range(func(l labels.Label) {
			// An empty value is an unset label.
			if l.Name == labels.MetricName || l.Value == "" {
				return
			}
			if l.Name == model.InstanceLabel {
				hasInstance = true
			}
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(l.Name), Value: proto.String(l.Value)})
		})
		// Prometheus adds its external labels, and an empty instance when they have none,
		// so that a scraper with honor_labels keeps the series without an instance of its own.
		if !hasInstance {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(model.InstanceLabel), Value: proto.String("")})
		}
		switch {
		case !isHistogram:
			m.Untyped = &dto.Untyped{Value: proto.Float64(s.F)}
		case s.H.UsesCustomBuckets():
			m.Histogram = classicHistogram(s.H)
		default:
			m.Histogram = nativeHistogram(s.H)
		}
		fam.Metric = append(fam.Metric, m)
	}
	if fam != nil {
		return enc.Encode(fam)
	}
	return nil
}

// nativeHistogram is h (of a standard exponential schema) in the exposition's protobuf.
func nativeHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	return &dto.Histogram{
		SampleCountFloat: proto.Float64(h.Count),
		SampleSum:        proto.Float64(h.Sum),
		Schema:           proto.Int32(h.Schema),
		ZeroThreshold:    proto.Float64(h.ZeroThreshold),
		ZeroCountFloat:   proto.Float64(h.ZeroCount),
		NegativeCount:    h.NegativeBuckets,
		PositiveCount:    h.PositiveBuckets,
		NegativeSpan:     bucketSpans(h.NegativeSpans),
		PositiveSpan:     bucketSpans(h.PositiveSpans),
	}
}

func bucketSpans(spans []histogram.Span) []*dto.BucketSpan {
	if len(spans) == 0 {
		return nil
	}
	out := make([]*dto.BucketSpan, len(spans))
	for i, sp := range spans {
		out[i] = &dto.BucketSpan{Offset: proto.Int32(sp.Offset), Length: proto.Uint32(sp.Length)}
	}
	return out
}

// classicHistogram is a histogram with custom buckets (schema -53) as the classic histogram it
// stands for: cumulative bucket counts at its upper bounds (the +Inf bucket is implied).
func classicHistogram(h *histogram.FloatHistogram) *dto.Histogram {
	result := &dto.Histogram{
		SampleCountFloat: proto.Float64(h.Count),
		SampleSum:        proto.Float64(h.Sum),
		Bucket:           make([]*dto.Bucket, len(h.CustomValues)),
	}
	var cumulative float64
	it := h.PositiveBucketIterator()
	ok := it.Next()
	for i, le := range h.CustomValues {
		for ok && int(it.At().Index) < i {
			ok = it.Next()
		}
		if ok && int(it.At().Index) == i {
			cumulative += it.At().Count
		}
		result.Bucket[i] = &dto.Bucket{UpperBound: proto.Float64(le), CumulativeCountFloat: proto.Float64(cumulative)}
	}
	return result
}
