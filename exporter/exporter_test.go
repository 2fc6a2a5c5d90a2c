package exporter

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	promMetadata "github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
	"github.com/metricstor/metricstor/storage"
)

// t0 is the timestamp of the test data, in milliseconds.
const t0 = int64(1_700_000_000_000)

func ts(ms int64) pcommon.Timestamp { return pcommon.Timestamp(ms * int64(time.Millisecond)) }

// testHost offers the given extensions to the exporter.
type testHost struct {
	exts map[component.ID]component.Component
}

func (h testHost) GetExtensions() map[component.ID]component.Component { return h.exts }

type notAStore struct {
	component.StartFunc
	component.ShutdownFunc
}

// harness is an exporter built by the factory, started against a store, with observable
// telemetry and logs.
type harness struct {
	exp  exporter.Metrics
	tel  *componenttest.Telemetry
	logs *observer.ObservedLogs
}

func newHarness(t *testing.T, store component.Component, mutate func(*Config)) *harness {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.RetryConfig.Enabled = false // return retryable errors to the test instead of retrying
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())

	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(context.Background())) })
	core, logs := observer.New(zapcore.DebugLevel)
	set := exporter.Settings{
		ID:                component.NewID(metadata.Type),
		TelemetrySettings: tel.NewTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
	set.Logger = zap.New(core)

	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	require.NoError(t, err)
	host := testHost{exts: map[component.ID]component.Component{cfg.Storage: store}}
	require.NoError(t, exp.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(context.Background())) })
	return &harness{exp: exp, tel: tel, logs: logs}
}

// counter returns the value of an int64 sum of the exporter's telemetry for the given attributes.
func (h *harness) counter(t *testing.T, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	m, err := h.tel.GetMetric(name)
	if err != nil {
		return 0
	}
	want := attribute.NewSet(attrs...)
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	return 0
}

func newResource(md pmetric.Metrics) pmetric.ScopeMetrics {
	rm := md.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	attrs.PutStr("service.name", "checkout")
	attrs.PutStr("service.namespace", "shop")
	attrs.PutStr("service.instance.id", "pod-1")
	attrs.PutStr("host.name", "h1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("shoplib")
	sm.Scope().SetVersion("1.2.3")
	return sm
}

func addGauge(sm pmetric.ScopeMetrics, name string, points ...struct {
	state string
	t     int64
	v     float64
},
) {
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	m.SetUnit("By")
	m.SetDescription("Memory in use.")
	g := m.SetEmptyGauge()
	for _, p := range points {
		dp := g.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(p.t))
		dp.SetDoubleValue(p.v)
		dp.Attributes().PutStr("state", p.state)
	}
}

type point = struct {
	state string
	t     int64
	v     float64
}

// allKinds builds one batch with a gauge, a monotonic cumulative sum, a histogram, an exponential
// histogram and a summary.
func allKinds() pmetric.Metrics { return allKindsAt(t0) }

func allKindsAt(t0 int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := newResource(md)

	addGauge(sm, "memory.usage", point{"used", t0, 42.5})

	sum := sm.Metrics().AppendEmpty()
	sum.SetName("http.requests")
	sum.SetDescription("Requests served.")
	s := sum.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sdp := s.DataPoints().AppendEmpty()
	sdp.SetStartTimestamp(ts(t0 - 10_000))
	sdp.SetTimestamp(ts(t0))
	sdp.SetIntValue(10)
	sdp.Attributes().PutStr("method", "GET")

	hist := sm.Metrics().AppendEmpty()
	hist.SetName("request.duration")
	hist.SetUnit("s")
	h := hist.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hdp := h.DataPoints().AppendEmpty()
	hdp.SetTimestamp(ts(t0))
	hdp.SetCount(4)
	hdp.SetSum(3.5)
	hdp.ExplicitBounds().FromRaw([]float64{0.1, 1})
	hdp.BucketCounts().FromRaw([]uint64{1, 2, 1})
	hdp.Attributes().PutStr("route", "/cart")

	exp := sm.Metrics().AppendEmpty()
	exp.SetName("latency")
	exp.SetUnit("ms")
	e := exp.SetEmptyExponentialHistogram()
	e.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	edp := e.DataPoints().AppendEmpty()
	edp.SetTimestamp(ts(t0))
	edp.SetScale(0)
	edp.SetCount(3)
	edp.SetSum(5)
	edp.Positive().SetOffset(0)
	edp.Positive().BucketCounts().FromRaw([]uint64{1, 2}) // (1,2]: 1, (2,4]: 2
	edp.Attributes().PutStr("route", "/cart")

	sumry := sm.Metrics().AppendEmpty()
	sumry.SetName("rpc.latency")
	sumry.SetUnit("s")
	qdp := sumry.SetEmptySummary().DataPoints().AppendEmpty()
	qdp.SetTimestamp(ts(t0))
	qdp.SetCount(7)
	qdp.SetSum(2.1)
	q := qdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.2)
	q = qdp.QuantileValues().AppendEmpty()
	q.SetQuantile(0.99)
	q.SetValue(0.9)
	qdp.Attributes().PutStr("rpc", "Get")
	return md
}

func TestPushAllKinds(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, nil)

	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), allKinds()))

	const id = `instance="pod-1", job="shop/checkout"`
	want := map[string][]sample{
		`{__name__="http_requests_total", ` + id + `, method="GET"}`:                         {{T: t0, V: 10}},
		`{__name__="memory_usage_bytes", ` + id + `, state="used"}`:                          {{T: t0, V: 42.5}},
		`{__name__="request_duration_seconds_bucket", ` + id + `, le="0.1", route="/cart"}`:  {{T: t0, V: 1}},
		`{__name__="request_duration_seconds_bucket", ` + id + `, le="1", route="/cart"}`:    {{T: t0, V: 3}},
		`{__name__="request_duration_seconds_bucket", ` + id + `, le="+Inf", route="/cart"}`: {{T: t0, V: 4}},
		`{__name__="request_duration_seconds_count", ` + id + `, route="/cart"}`:             {{T: t0, V: 4}},
		`{__name__="request_duration_seconds_sum", ` + id + `, route="/cart"}`:               {{T: t0, V: 3.5}},
		`{__name__="rpc_latency_seconds", ` + id + `, quantile="0.5", rpc="Get"}`:            {{T: t0, V: 0.2}},
		`{__name__="rpc_latency_seconds", ` + id + `, quantile="0.99", rpc="Get"}`:           {{T: t0, V: 0.9}},
		`{__name__="rpc_latency_seconds_count", ` + id + `, rpc="Get"}`:                      {{T: t0, V: 7}},
		`{__name__="rpc_latency_seconds_sum", ` + id + `, rpc="Get"}`:                        {{T: t0, V: 2.1}},
		`{__name__="target_info", host_name="h1", ` + id + `}`:                               {{T: t0, V: 1}},
		`{__name__="latency_milliseconds", ` + id + `, route="/cart"}`: {{T: t0, H: &histogram.Histogram{
			CounterResetHint: histogram.UnknownCounterReset,
			Schema:           0,
			ZeroThreshold:    1e-128,
			Count:            3,
			Sum:              5,
			PositiveSpans:    []histogram.Span{{Offset: 1, Length: 2}},
			PositiveBuckets:  []int64{1, 1}, // delta encoded: 1, 2
		}}},
	}
	got := dump(t, store)
	assert.Equal(t, keys(want), keys(got))
	assert.Equal(t, want, got)

	md, err := store.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, []promMetadata.Metadata{{Type: "counter", Help: "Requests served."}}, md["http_requests_total"])
	assert.Equal(t, []promMetadata.Metadata{{Type: "gauge", Unit: "bytes", Help: "Memory in use."}}, md["memory_usage_bytes"])
	assert.Equal(t, []promMetadata.Metadata{{Type: "histogram", Unit: "seconds"}}, md["request_duration_seconds"])
	assert.Equal(t, []promMetadata.Metadata{{Type: "summary", Unit: "seconds"}}, md["rpc_latency_seconds"])

	assert.Equal(t, int64(13), h.counter(t, "metricstor_exporter_samples_accepted"))
	assert.Equal(t, 0, h.logs.FilterLevelExact(zapcore.WarnLevel).Len())
}

func TestPushTranslationOptions(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, func(cfg *Config) {
		cfg.TranslationStrategy = "UnderscoreEscapingWithoutSuffixes"
		cfg.PromoteResourceAttributes = []string{" host.name "}
		cfg.PromoteScopeMetadata = true
		cfg.TargetInfo = false
	})
	md := pmetric.NewMetrics()
	addGauge(newResource(md), "memory.usage", point{"used", t0, 1})
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), md))

	assert.Equal(t, []string{
		`{__name__="memory_usage", host_name="h1", instance="pod-1", job="shop/checkout", otel_scope_name="shoplib", otel_scope_version="1.2.3", state="used"}`,
	}, keys(dump(t, store)))
}

func TestPushRejectedSamples(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, nil)

	md := pmetric.NewMetrics()
	addGauge(newResource(md), "memory.usage", point{"used", t0 + 60_000, 2})
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), md))

	// The older "used" sample comes first in its metric: the "free" sample after it must still be
	// stored, and so must the other metric.
	md = pmetric.NewMetrics()
	sm := newResource(md)
	addGauge(sm, "memory.usage", point{"used", t0, 1}, point{"free", t0, 5})
	addGauge(sm, "swap.usage", point{"used", t0, 7})
	err := h.exp.ConsumeMetrics(context.Background(), md)

	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "rejected samples must not be retried: %v", err)
	assert.ErrorIs(t, err, promstorage.ErrOutOfOrderSample)
	assert.EqualError(t, err, `Permanent error: metricstor exporter: store rejected 2 of 4 samples (out_of_order=2), the other 2 were stored; first out_of_order: `+
		`series {__name__="memory_usage_bytes", instance="pod-1", job="shop/checkout", state="used"} at 1700000000000: out of order sample`)

	const id = `instance="pod-1", job="shop/checkout"`
	assert.Equal(t, map[string][]sample{
		`{__name__="memory_usage_bytes", ` + id + `, state="used"}`: {{T: t0 + 60_000, V: 2}},
		`{__name__="memory_usage_bytes", ` + id + `, state="free"}`: {{T: t0, V: 5}},
		`{__name__="swap_usage_bytes", ` + id + `, state="used"}`:   {{T: t0, V: 7}},
		`{__name__="target_info", host_name="h1", ` + id + `}`:      {{T: t0 + 60_000, V: 1}},
	}, dump(t, store))

	assert.Equal(t, int64(2), h.counter(t, "metricstor_exporter_samples_rejected", attribute.String("reason", "out_of_order")))
	assert.Equal(t, int64(2+2), h.counter(t, "metricstor_exporter_samples_accepted"))

	warns := h.logs.FilterLevelExact(zapcore.WarnLevel).All()
	require.Len(t, warns, 1, "one warning per push, never per sample")
	fields := warns[0].ContextMap()
	assert.Equal(t, int64(2), fields["samples_accepted"])
	assert.Equal(t, int64(2), fields["samples_rejected"])
	assert.Equal(t, int64(2), fields["out_of_order"])
}

func TestPushDuplicateSample(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, func(cfg *Config) { cfg.TargetInfo = false })

	md := pmetric.NewMetrics()
	addGauge(newResource(md), "memory.usage", point{"used", t0, 1})
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), md))

	md = pmetric.NewMetrics()
	addGauge(newResource(md), "memory.usage", point{"used", t0, 2})
	err := h.exp.ConsumeMetrics(context.Background(), md)
	assert.True(t, consumererror.IsPermanent(err))
	assert.ErrorIs(t, err, promstorage.ErrDuplicateSampleForTimestamp)
	assert.Equal(t, int64(1), h.counter(t, "metricstor_exporter_samples_rejected", attribute.String("reason", "duplicate")))
}

func TestPushDeltaTemporality(t *testing.T) {
	deltaBatch := func() pmetric.Metrics {
		md := pmetric.NewMetrics()
		sm := newResource(md)
		addGauge(sm, "memory.usage", point{"used", t0, 1})
		m := sm.Metrics().AppendEmpty()
		m.SetName("jobs.done")
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := s.DataPoints().AppendEmpty()
		dp.SetTimestamp(ts(t0))
		dp.SetIntValue(3)
		return md
	}
	const id = `instance="pod-1", job="shop/checkout"`

	t.Run("rejected by default", func(t *testing.T) {
		store := newTSDBStore(t)
		h := newHarness(t, store, func(cfg *Config) { cfg.TargetInfo = false })
		err := h.exp.ConsumeMetrics(context.Background(), deltaBatch())
		assert.True(t, consumererror.IsPermanent(err))
		assert.EqualError(t, err, `Permanent error: metricstor exporter: untranslatable metrics dropped: invalid temporality and type combination for metric "jobs.done"`)
		assert.Equal(t, map[string][]sample{
			`{__name__="memory_usage_bytes", ` + id + `, state="used"}`: {{T: t0, V: 1}},
		}, dump(t, store), "the cumulative part of the batch is stored")
	})
	t.Run("allowed", func(t *testing.T) {
		store := newTSDBStore(t)
		h := newHarness(t, store, func(cfg *Config) {
			cfg.TargetInfo = false
			cfg.AllowDeltaTemporality = true
		})
		require.NoError(t, h.exp.ConsumeMetrics(context.Background(), deltaBatch()))
		assert.Equal(t, map[string][]sample{
			`{__name__="memory_usage_bytes", ` + id + `, state="used"}`: {{T: t0, V: 1}},
			`{__name__="jobs_done_total", ` + id + `}`:                  {{T: t0, V: 3}},
		}, dump(t, store))
		md, err := store.MetricMetadata(context.Background(), "jobs_done_total")
		require.NoError(t, err)
		assert.Equal(t, map[string][]promMetadata.Metadata{"jobs_done_total": {{Type: "unknown"}}}, md)
	})
}

func TestPushStoreNotRunning(t *testing.T) {
	store := notRunningStore{newTSDBStore(t)}
	h := newHarness(t, store, nil)

	err := h.exp.ConsumeMetrics(context.Background(), allKinds())
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "a store that is not running is worth a retry")
	assert.ErrorIs(t, err, storage.ErrNotRunning)
	assert.Equal(t, int64(0), h.counter(t, "metricstor_exporter_samples_accepted"))
}

func TestPushCommitFails(t *testing.T) {
	base := newTSDBStore(t)
	commitErr := errors.New("pebble: disk full")
	h := newHarness(t, failingCommitStore{tsdbStore: base, err: commitErr}, nil)

	err := h.exp.ConsumeMetrics(context.Background(), allKinds())
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	assert.ErrorIs(t, err, commitErr)
	assert.Empty(t, dump(t, base))
	assert.Equal(t, int64(0), h.counter(t, "metricstor_exporter_samples_accepted"))
}

func TestPushRetriesUntilStoreRuns(t *testing.T) {
	base := newTSDBStore(t)
	flaky := &flakyStore{tsdbStore: base, failures: 2}
	h := newHarness(t, flaky, func(cfg *Config) {
		cfg.RetryConfig.Enabled = true
		cfg.RetryConfig.InitialInterval = time.Millisecond
		cfg.RetryConfig.MaxInterval = time.Millisecond
	})
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), allKinds()))
	assert.Len(t, dump(t, base), 13)
	assert.Equal(t, 3, flaky.calls)
}

// flakyStore is not running for its first `failures` appenders.
type flakyStore struct {
	*tsdbStore
	failures, calls int
}

func (s *flakyStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	s.calls++
	if s.calls <= s.failures {
		return notRunningAppender{}
	}
	return s.tsdbStore.AppenderV2(ctx)
}

func TestStartErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		exts    map[component.ID]component.Component
		wantErr string
	}{
		{
			name:    "missing",
			exts:    map[component.ID]component.Component{component.MustNewID("metricstor"): notAStore{}},
			wantErr: `metricstor exporter: storage extension "metricstor/x" not found`,
		},
		{
			name:    "not a store",
			exts:    map[component.ID]component.Component{component.MustNewIDWithName("metricstor", "x"): notAStore{}},
			wantErr: `metricstor exporter: extension "metricstor/x" is not a metricstor storage (it is exporter.notAStore)`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			cfg.Storage = component.MustNewIDWithName("metricstor", "x")
			set := exporter.Settings{
				ID:                component.NewID(metadata.Type),
				TelemetrySettings: componenttest.NewNopTelemetrySettings(),
				BuildInfo:         component.NewDefaultBuildInfo(),
			}
			exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
			require.NoError(t, err)
			require.EqualError(t, exp.Start(context.Background(), testHost{exts: tc.exts}), tc.wantErr)
			require.NoError(t, exp.Shutdown(context.Background()))
		})
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	set := exporter.Settings{
		ID:                component.NewID(metadata.Type),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
	exp, err := NewFactory().CreateMetrics(context.Background(), set, createDefaultConfig())
	require.NoError(t, err)
	require.NoError(t, exp.Shutdown(context.Background()))
	assert.False(t, exp.Capabilities().MutatesData)
}
