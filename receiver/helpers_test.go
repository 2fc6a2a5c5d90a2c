package receiver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap/zaptest"

	mexporter "github.com/metricstor/metricstor/exporter"
	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/receiver/internal/metadata"
	"github.com/metricstor/metricstor/storage"
)

const (
	ctV1 = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

type testHost map[component.ID]component.Component

func (h testHost) GetExtensions() map[component.ID]component.Component { return h }

// startReceiver starts a receiver on a free loopback port in front of next and returns the URL of
// its write path. mutate may change the config first.
func startReceiver(t testing.TB, next consumer.Metrics, tel *componenttest.Telemetry, mutate func(*Config)) string {
	t.Helper()
	rcv := startReceiverOn(t, testHost{}, next, tel, mutate)
	return "http://" + rcv.listener.Addr().String() + WritePath
}

// startReceiverOn is startReceiver with the host it starts on, returning the receiver.
func startReceiverOn(t testing.TB, host testHost, next consumer.Metrics, tel *componenttest.Telemetry, mutate func(*Config)) *remoteWriteReceiver {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	set := receiver.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	set.Logger = zaptest.NewLogger(t)
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return rcv.(*remoteWriteReceiver)
}

// bothWays runs f with the receiver's direct_write off (pipeline data) and on (the series
// straight to the exporter, where the test pipeline allows it: see startPipelineWith).
func bothWays(t *testing.T, f func(t *testing.T, direct bool)) {
	t.Run("pipeline", func(t *testing.T) { f(t, false) })
	t.Run("direct", func(t *testing.T) { f(t, true) })
}

// startPipeline starts the real chain: receiver -> metricstor exporter (default config) ->
// metricstor storage extension on a temporary directory. It returns the write URL and the store.
// With direct the receiver has direct_write on and writes its series straight to the exporter.
func startPipeline(t testing.TB, direct bool) (string, storage.Store) {
	t.Helper()
	return startPipelineWith(t, direct, nil, nil)
}

// startPipelineWith is startPipeline with a hook that may wrap the store the exporter sees and a
// hook that may change the exporter's config and put processors before it. The store is told
// the configuration of that pipeline, as the collector tells it (a processor per hook), and the
// receiver must then write directly exactly when direct is set and the pipeline allows it: no
// processor, an exporter without queue and retries.
func startPipelineWith(t testing.TB, direct bool, wrapStore func(storage.Store) storage.Store, mutate func(cfg component.Config), before ...func(next consumer.Metrics) consumer.Metrics) (string, storage.Store) {
	t.Helper()
	ctx := context.Background()
	sf := storage.NewFactory()
	scfg := sf.CreateDefaultConfig()
	require.NoError(t, unmarshalInto(scfg, map[string]any{"directory": t.TempDir()}))
	sid := component.MustNewID("metricstor")
	ext, err := sf.Create(ctx, extension.Settings{ID: sid, TelemetrySettings: componenttest.NewNopTelemetrySettings()}, scfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, testHost{sid: ext}))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(ctx)) })
	store := ext.(storage.Store)
	var processors []any
	for i := range before {
		processors = append(processors, fmt.Sprintf("test/%d", i))
	}
	snapshot := extensioncapabilities.NewConfigSnapshot(confmap.NewFromStringMap(map[string]any{
		"service": map[string]any{"pipelines": map[string]any{"metrics": map[string]any{
			"receivers": []any{"remote_write"}, "processors": processors, "exporters": []any{"metricstor"},
		}}},
	}), nil)
	host := testHost{sid: ext}
	if wrapStore != nil {
		host = testHost{sid: storeComponent{Store: wrapStore(store), Routes: &passthrough.Routes{}}}
	}
	require.NoError(t, host[sid].(extensioncapabilities.ConfigSnapshotWatcher).NotifyConfigSnapshot(ctx, snapshot))

	ef := mexporter.NewFactory()
	ecfg := ef.CreateDefaultConfig()
	if mutate != nil {
		mutate(ecfg)
	}
	eset := exporter.Settings{ID: component.MustNewID("metricstor"), TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}
	eset.Logger = zaptest.NewLogger(t)
	exp, err := ef.CreateMetrics(ctx, eset, ecfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(ctx, host))
	t.Cleanup(func() { require.NoError(t, exp.Shutdown(ctx)) })

	var next consumer.Metrics = exp
	for _, wrap := range before {
		next = wrap(next)
	}
	rcv := startReceiverOn(t, host, next, nil, func(cfg *Config) { cfg.DirectWrite = direct })
	c := ecfg.(*mexporter.Config)
	wantDirect := direct && len(before) == 0 && !c.QueueConfig.HasValue() && !c.RetryConfig.Enabled
	require.Equal(t, wantDirect, rcv.writer != nil, "the receiver writes directly")
	return "http://" + rcv.listener.Addr().String() + WritePath, store
}

// storeComponent makes a wrapped store a component, as the storage extension is, with the
// extension's routing of direct writes.
type storeComponent struct {
	storage.Store
	*passthrough.Routes
	component.StartFunc
	component.ShutdownFunc
}

func (c storeComponent) NotifyConfigSnapshot(_ context.Context, s extensioncapabilities.ConfigSnapshot) error {
	return c.SetConfig(s.Effective())
}

func (c storeComponent) RegisterSeriesWriter(exporter component.ID, w passthrough.SeriesWriter) {
	c.Register(exporter, w)
}

type response struct {
	code   int
	body   string
	header http.Header
}

func post(t testing.TB, url, contentType, encoding string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, body: string(b), header: resp.Header}
}

// pushV1 marshals and snappy-encodes req and posts it as remote write 1.0.
func pushV1(t testing.TB, url string, req *prompb.WriteRequest) response {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return post(t, url, ctV1, "snappy", snappy.Encode(nil, b))
}

// pushV2 marshals and snappy-encodes req and posts it as remote write 2.0.
func pushV2(t testing.TB, url string, req *writev2.Request) response {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return post(t, url, ctV2, "snappy", snappy.Encode(nil, b))
}

// v1Labels builds prompb labels in the given order (not sorted: tests use unsorted input too).
func v1Labels(kv ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// v2Builder builds a 2.0 request with its symbol table.
type v2Builder struct {
	st  writev2.SymbolsTable
	req writev2.Request
}

func newV2Builder() *v2Builder { return &v2Builder{st: writev2.NewSymbolTable()} }

func (b *v2Builder) series(ls labels.Labels, meta writev2.Metadata, samples []writev2.Sample, hs []writev2.Histogram, exs ...writev2.Exemplar) {
	b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{
		LabelsRefs: b.st.SymbolizeLabels(ls, nil),
		Samples:    samples,
		Histograms: hs,
		Exemplars:  exs,
		Metadata:   meta,
	})
}

func (b *v2Builder) meta(typ writev2.Metadata_MetricType, help, unit string) writev2.Metadata {
	return writev2.Metadata{Type: typ, HelpRef: b.st.Symbolize(help), UnitRef: b.st.Symbolize(unit)}
}

func (b *v2Builder) exemplar(ls labels.Labels, v float64, ts int64) writev2.Exemplar {
	return writev2.Exemplar{LabelsRefs: b.st.SymbolizeLabels(ls, nil), Value: v, Timestamp: ts}
}

func (b *v2Builder) build() *writev2.Request {
	r := b.req
	r.Symbols = b.st.Symbols()
	return &r
}

// Test histograms: integer exponential, float exponential, custom buckets (int and float).
func intHistogram(ts int64) *histogram.Histogram {
	return &histogram.Histogram{
		Schema: 1, ZeroThreshold: 0.001, ZeroCount: 2, Count: 13 + uint64(ts%7), Sum: 18.4 + float64(ts%5),
		PositiveSpans:   []histogram.Span{{Offset: -1, Length: 2}, {Offset: 3, Length: 1}},
		PositiveBuckets: []int64{1, 2, -1},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 1}},
		NegativeBuckets: []int64{int64(5 + ts%7)},
	}
}

func floatHistogram() *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		Schema: 0, ZeroThreshold: 0.5, ZeroCount: 0.25, Count: 3.75, Sum: -1.125,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []float64{1.5, 0.5},
		NegativeSpans:   []histogram.Span{{Offset: 1, Length: 1}},
		NegativeBuckets: []float64{1.5},
	}
}

func customHistogram() *histogram.Histogram {
	return &histogram.Histogram{
		Schema: histogram.CustomBucketsSchema, Count: 9, Sum: 21.5,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 1}},
		PositiveBuckets: []int64{3, 1, -2},
		CustomValues:    []float64{0.5, 1, 5},
	}
}

func customFloatHistogram() *histogram.FloatHistogram {
	return &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 2.5, Sum: 0.7,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 1}, {Offset: 2, Length: 1}},
		PositiveBuckets: []float64{1.25, 1.25},
		CustomValues:    []float64{0.1, 0.2, 0.4},
	}
}
