package queryext

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promdata "github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	"github.com/metricstor/metricstor/queryext/internal/metadata"
	mstorage "github.com/metricstor/metricstor/storage"
)

// t0 is the time of the first test sample: 2023-11-14T22:13:20Z, 1700000000 in the API's seconds.
const t0 = int64(1_700_000_000_000)

var testMeta = map[string][]promdata.Metadata{
	"http_requests_total": {{Type: "counter", Help: "Total requests.", Unit: ""}},
	"request_duration_seconds": {
		{Type: "histogram", Help: "Request duration.", Unit: "seconds"},
		{Type: "histogram", Help: "Request duration (old help).", Unit: "seconds"},
		{Type: "histogram", Help: "Request duration.", Unit: "seconds"}, // duplicate: shown once
	},
}

// loadTestData appends two float series, one with an exemplar, and one native histogram series.
func loadTestData(t *testing.T, s *testStore) {
	ctx := context.Background()
	app := s.AppenderV2(ctx)
	a := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "a")
	b := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "b")
	for i, v := range []float64{1, 2, 3, 4} {
		var opts promstorage.AppendV2Options
		if i == 3 {
			opts.Exemplars = []exemplar.Exemplar{{
				Labels: labels.FromStrings("trace_id", "abc123"), Value: 4, Ts: t0 + 45_000, HasTs: true,
			}}
		}
		_, err := app.Append(0, a, 0, t0+int64(i)*15_000, v, nil, nil, opts)
		require.NoError(t, err)
	}
	for i, v := range []float64{10, 20} {
		_, err := app.Append(0, b, 0, t0+int64(i)*15_000, v, nil, nil, promstorage.AppendV2Options{})
		require.NoError(t, err)
	}
	h := &histogram.Histogram{
		Schema: 0, Count: 5, Sum: 12.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0},
	}
	hl := labels.FromStrings("__name__", "request_duration_seconds", "job", "api")
	_, err := app.Append(0, hl, 0, t0+30_000, 0, h, nil, promstorage.AppendV2Options{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

// startTestExtension starts the extension on 127.0.0.1:0 over a loaded test store and returns
// the base URL.
func startTestExtension(t *testing.T, mutate func(*Config)) string {
	store := newTestStore(t, testMeta)
	loadTestData(t, store)
	return startTestExtensionOn(t, store, mutate)
}

// startTestExtensionOn starts the extension over store, tells it the pipelines are ready, and
// returns its base URL.
func startTestExtensionOn(t *testing.T, store *testStore, mutate func(*Config)) string {
	ext := startUnreadyExtension(t, store, mutate)
	require.NoError(t, ext.Ready())
	return "http://" + ext.addr.String()
}

// startUnreadyExtension starts the extension over store as the collector does before its
// pipelines have started.
func startUnreadyExtension(t *testing.T, store *testStore, mutate func(*Config)) *promqlExtension {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	set := nopSettings()
	set.BuildInfo.Version = "1.2.3-test"
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	host := testHost{cfg.Storage: store}
	require.NoError(t, ext.Start(context.Background(), host))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	return ext.(*promqlExtension)
}

type httpResult struct {
	code int
	body string
}

func get(t *testing.T, base, path string, params url.Values) httpResult {
	u := base + path
	if params != nil {
		u += "?" + params.Encode()
	}
	resp, err := http.Get(u)
	require.NoError(t, err)
	return readResult(t, resp)
}

func postForm(t *testing.T, base, path string, params url.Values) httpResult {
	resp, err := http.PostForm(base+path, params)
	require.NoError(t, err)
	return readResult(t, resp)
}

func readResult(t *testing.T, resp *http.Response) httpResult {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResult{code: resp.StatusCode, body: string(b)}
}

func TestHTTPAPI(t *testing.T) {
	base := startTestExtension(t, nil)

	const seriesA = `{"__name__":"http_requests_total","instance":"a","job":"api"}`
	const seriesB = `{"__name__":"http_requests_total","instance":"b","job":"api"}`
	rangeParams := url.Values{
		"query": {`http_requests_total{instance="a"}`},
		"start": {"1700000000"}, "end": {"1700000045"}, "step": {"15s"},
	}
	const rangeJSON = `{"status":"success","data":{"resultType":"matrix","result":[` +
		`{"metric":` + seriesA + `,"values":[[1700000000,"1"],[1700000015,"2"],[1700000030,"3"],[1700000045,"4"]]}]}}`

	tests := []struct {
		name   string
		do     func() httpResult
		code   int
		expect string
	}{
		{
			name: "instant query",
			do: func() httpResult {
				return get(t, base, "/api/v1/query", url.Values{"query": {"http_requests_total"}, "time": {"1700000045"}})
			},
			code: 200,
			expect: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":` + seriesA + `,"value":[1700000045,"4"]},` +
				`{"metric":` + seriesB + `,"value":[1700000045,"20"]}]}}`,
		},
		{
			name: "instant query over a native histogram",
			do: func() httpResult {
				return get(t, base, "/api/v1/query", url.Values{"query": {"request_duration_seconds"}, "time": {"1700000030.5"}})
			},
			code: 200,
			expect: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"request_duration_seconds","job":"api"},"histogram":[1700000030.5,` +
				`{"count":"5","sum":"12.5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"1","2","2"]]}]}]}}`,
		},
		{
			name: "instant query, scalar arithmetic",
			do: func() httpResult {
				return postForm(t, base, "/api/v1/query", url.Values{"query": {`sum(http_requests_total) * 2`}, "time": {"1700000045"}})
			},
			code:   200,
			expect: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000045,"48"]}]}}`,
		},
		{
			name:   "range query GET",
			do:     func() httpResult { return get(t, base, "/api/v1/query_range", rangeParams) },
			code:   200,
			expect: rangeJSON,
		},
		{
			name:   "range query POST form",
			do:     func() httpResult { return postForm(t, base, "/api/v1/query_range", rangeParams) },
			code:   200,
			expect: rangeJSON,
		},
		{
			name: "range query over a native histogram with histogram_count",
			do: func() httpResult {
				return get(t, base, "/api/v1/query_range", url.Values{
					"query": {`histogram_count(request_duration_seconds)`},
					"start": {"1700000030"}, "end": {"1700000060"}, "step": {"30"},
				})
			},
			code: 200,
			expect: `{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"job":"api"},"values":[[1700000030,"5"],[1700000060,"5"]]}]}}`,
		},
		{
			name: "series",
			do: func() httpResult {
				return get(t, base, "/api/v1/series", url.Values{"match[]": {"http_requests_total"}, "start": {"1700000000"}, "end": {"1700000100"}})
			},
			code:   200,
			expect: `{"status":"success","data":[` + seriesA + `,` + seriesB + `]}`,
		},
		{
			name:   "labels",
			do:     func() httpResult { return get(t, base, "/api/v1/labels", nil) },
			code:   200,
			expect: `{"status":"success","data":["__name__","instance","job"]}`,
		},
		{
			name: "labels with a matcher",
			do: func() httpResult {
				return postForm(t, base, "/api/v1/labels", url.Values{"match[]": {"request_duration_seconds"}})
			},
			code:   200,
			expect: `{"status":"success","data":["__name__","job"]}`,
		},
		{
			name:   "label values",
			do:     func() httpResult { return get(t, base, "/api/v1/label/__name__/values", nil) },
			code:   200,
			expect: `{"status":"success","data":["http_requests_total","request_duration_seconds"]}`,
		},
		{
			name:   "label values of instance",
			do:     func() httpResult { return get(t, base, "/api/v1/label/instance/values", nil) },
			code:   200,
			expect: `{"status":"success","data":["a","b"]}`,
		},
		{
			name: "exemplars",
			do: func() httpResult {
				return get(t, base, "/api/v1/query_exemplars", url.Values{"query": {"http_requests_total"}, "start": {"1700000000"}, "end": {"1700000100"}})
			},
			code: 200,
			expect: `{"status":"success","data":[{"seriesLabels":` + seriesA +
				`,"exemplars":[{"labels":{"trace_id":"abc123"},"value":"4","timestamp":1700000045}]}]}`,
		},
		{
			name: "format_query",
			do: func() httpResult {
				return get(t, base, "/api/v1/format_query", url.Values{"query": {"sum(rate(foo[1m]))by(job)"}})
			},
			code:   200,
			expect: `{"status":"success","data":"sum by (job) (rate(foo[1m]))"}`,
		},
		{
			name: "parse_query",
			do:   func() httpResult { return get(t, base, "/api/v1/parse_query", url.Values{"query": {"up"}}) },
			code: 200,
			expect: `{"status":"success","data":{"type":"vectorSelector","name":"up","matchers":[` +
				`{"type":"=","name":"__name__","value":"up"}],"offset":0,"offsetExpr":null,"startOrEnd":null,"timestamp":null,` +
				`"anchored":false,"smoothed":false}}`,
		},
		{
			name: "buildinfo",
			do:   func() httpResult { return get(t, base, "/api/v1/status/buildinfo", nil) },
			code: 200,
			expect: `{"status":"success","data":{"version":"3.16.0","revision":"","branch":"metricstor/1.2.3-test","buildUser":"",` +
				`"buildDate":"","goVersion":"` + runtime.Version() + `"}}`,
		},
		{
			name: "malformed query",
			do:   func() httpResult { return get(t, base, "/api/v1/query", url.Values{"query": {"sum("}}) },
			code: 400,
			expect: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": ` +
				`1:5: parse error: unclosed left parenthesis"}`,
		},
		{
			name: "bad step",
			do: func() httpResult {
				return get(t, base, "/api/v1/query_range", url.Values{"query": {"up"}, "start": {"10"}, "end": {"20"}, "step": {"0"}})
			},
			code: 400,
			expect: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": ` +
				`zero or negative query resolution step widths are not accepted. Try a positive integer"}`,
		},
		{
			name:   "targets: none",
			do:     func() httpResult { return get(t, base, "/api/v1/targets", nil) },
			code:   200,
			expect: `{"status":"success","data":{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}}`,
		},
		{
			name:   "scrape pools: none",
			do:     func() httpResult { return get(t, base, "/api/v1/scrape_pools", nil) },
			code:   200,
			expect: `{"status":"success","data":{"scrapePools":[]}}`,
		},
		{
			name:   "rules: none",
			do:     func() httpResult { return get(t, base, "/api/v1/rules", nil) },
			code:   200,
			expect: `{"status":"success","data":{"groups":[]}}`,
		},
		{
			name:   "alerts: none",
			do:     func() httpResult { return get(t, base, "/api/v1/alerts", nil) },
			code:   200,
			expect: `{"status":"success","data":{"alerts":[]}}`,
		},
		{
			name:   "alertmanagers: none",
			do:     func() httpResult { return get(t, base, "/api/v1/alertmanagers", nil) },
			code:   200,
			expect: `{"status":"success","data":{"activeAlertmanagers":[],"droppedAlertmanagers":[]}}`,
		},
		{
			name:   "WAL replay status: unsupported",
			do:     func() httpResult { return get(t, base, "/api/v1/status/walreplay", nil) },
			code:   500,
			expect: `{"status":"error","errorType":"internal","error":"` + errUnsupported.Error() + `"}`,
		},
		{
			// Prometheus answers errorType unavailable with its default code, 500.
			name:   "admin APIs disabled",
			do:     func() httpResult { return postForm(t, base, "/api/v1/admin/tsdb/snapshot", nil) },
			code:   500,
			expect: `{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}`,
		},
		{
			name: "remote write disabled",
			do: func() httpResult {
				return postForm(t, base, "/api/v1/write", nil)
			},
			code: 404,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.do()
			assert.Equal(t, tt.code, res.code, res.body)
			if tt.expect != "" {
				assert.JSONEq(t, tt.expect, res.body)
			}
		})
	}
}

func TestHTTPMetadata(t *testing.T) {
	base := startTestExtension(t, nil)

	const counter = `"http_requests_total":[{"type":"counter","help":"Total requests.","unit":""}]`
	const histNew = `{"type":"histogram","help":"Request duration.","unit":"seconds"}`
	const histOld = `{"type":"histogram","help":"Request duration (old help).","unit":"seconds"}`
	tests := []struct {
		name   string
		params url.Values
		code   int
		expect string
	}{
		{
			name:   "all",
			code:   200,
			expect: `{"status":"success","data":{` + counter + `,"request_duration_seconds":[` + histNew + `,` + histOld + `]}}`,
		},
		{
			name:   "limit",
			params: url.Values{"limit": {"1"}},
			code:   200,
			expect: `{"status":"success","data":{` + counter + `}}`,
		},
		{
			name:   "limit zero gives none, as in Prometheus",
			params: url.Values{"limit": {"0"}},
			code:   200,
			expect: `{"status":"success","data":{}}`,
		},
		{
			name:   "limit_per_metric",
			params: url.Values{"limit_per_metric": {"1"}},
			code:   200,
			expect: `{"status":"success","data":{` + counter + `,"request_duration_seconds":[` + histNew + `]}}`,
		},
		{
			name:   "metric",
			params: url.Values{"metric": {"request_duration_seconds"}},
			code:   200,
			expect: `{"status":"success","data":{"request_duration_seconds":[` + histNew + `,` + histOld + `]}}`,
		},
		{
			name:   "unknown metric",
			params: url.Values{"metric": {"nope"}},
			code:   200,
			expect: `{"status":"success","data":{}}`,
		},
		{
			name:   "bad limit",
			params: url.Values{"limit": {"ten"}},
			code:   400,
			expect: `{"status":"error","errorType":"bad_data","error":"limit must be a number"}`,
		},
		{
			name:   "bad limit_per_metric",
			params: url.Values{"limit_per_metric": {"1.5"}},
			code:   400,
			expect: `{"status":"error","errorType":"bad_data","error":"limit_per_metric must be a number"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := get(t, base, "/api/v1/metadata", tt.params)
			assert.Equal(t, tt.code, res.code, res.body)
			assert.JSONEq(t, tt.expect, res.body)
		})
	}
}

// The probes follow the collector's lifecycle: healthy from Start, ready (and the API open) only
// once every pipeline has started (Ready) and until the pipelines stop (NotReady).
func TestHTTPProbes(t *testing.T) {
	ext := startUnreadyExtension(t, newTestStore(t, nil), nil)
	base := "http://" + ext.addr.String()
	healthy := httpResult{200, "Metricstor is Healthy.\n"}
	unavailable := httpResult{503, "Service Unavailable"}
	instant := url.Values{"query": {"1"}, "time": {"1700000000"}}

	assert.Equal(t, healthy, get(t, base, "/-/healthy", nil))
	assert.Equal(t, unavailable, get(t, base, "/-/ready", nil), "before the pipelines started")
	assert.Equal(t, unavailable, get(t, base, "/api/v1/query", instant))

	require.NoError(t, ext.Ready())
	assert.Equal(t, healthy, get(t, base, "/-/healthy", nil))
	assert.Equal(t, httpResult{200, "Metricstor is Ready.\n"}, get(t, base, "/-/ready", nil))
	assert.Equal(t, 200, get(t, base, "/api/v1/query", instant).code)

	require.NoError(t, ext.NotReady())
	assert.Equal(t, healthy, get(t, base, "/-/healthy", nil))
	assert.Equal(t, unavailable, get(t, base, "/-/ready", nil), "while the pipelines stop")
	assert.Equal(t, unavailable, get(t, base, "/api/v1/query", instant))
}

func TestMaxSamples(t *testing.T) {
	base := startTestExtension(t, func(cfg *Config) { cfg.MaxSamples = 3 })
	res := get(t, base, "/api/v1/query", url.Values{"query": {"http_requests_total[1m]"}, "time": {"1700000045"}})
	assert.Equal(t, 422, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"execution",`+
		`"error":"query processing would load too many samples into memory in query execution"}`, res.body)

	// Within the limit the same server answers.
	res = get(t, base, "/api/v1/query", url.Values{"query": {`http_requests_total{instance="b"}[1m]`}, "time": {"1700000045"}})
	assert.Equal(t, 200, res.code, res.body)
}

// max_points_per_range_query counts the points of a range query's result, floats and
// histograms, over all series: at the limit the query answers, one past it fails with 422.
func TestMaxPointsPerRangeQuery(t *testing.T) {
	// Two series over 4 steps: 8 points (series b's last value is looked back to).
	rangeQuery := url.Values{"query": {"http_requests_total"}, "start": {"1700000000"}, "end": {"1700000045"}, "step": {"15"}}
	histQuery := url.Values{"query": {"request_duration_seconds"}, "start": {"1700000000"}, "end": {"1700000045"}, "step": {"15"}}

	at := startTestExtension(t, func(cfg *Config) { cfg.MaxPointsPerRangeQuery = 8 })
	res := get(t, at, "/api/v1/query_range", rangeQuery)
	require.Equal(t, 200, res.code, res.body)
	assert.Equal(t, 8, strings.Count(res.body, "[17000000"), "8 points: %s", res.body)
	// An instant query returning a range vector is not a range query.
	res = get(t, at, "/api/v1/query", url.Values{"query": {"http_requests_total[1m]"}, "time": {"1700000045"}})
	assert.Equal(t, 200, res.code, res.body)

	past := startTestExtension(t, func(cfg *Config) { cfg.MaxPointsPerRangeQuery = 7 })
	for _, do := range []func(*testing.T, string, string, url.Values) httpResult{get, postForm} {
		res = do(t, past, "/api/v1/query_range", rangeQuery)
		assert.Equal(t, 422, res.code)
		assert.JSONEq(t, `{"status":"error","errorType":"execution","error":"query result has 8 points in 2 series, `+
			`more than max_points_per_range_query 7: select fewer series, or use a larger step or a shorter range"}`, res.body)
	}
	// Histogram points count too: 2 of them (at t0+30s and t0+45s).
	res = get(t, past, "/api/v1/query_range", histQuery)
	assert.Equal(t, 200, res.code, res.body)
	one := startTestExtension(t, func(cfg *Config) { cfg.MaxPointsPerRangeQuery = 1 })
	res = get(t, one, "/api/v1/query_range", histQuery)
	assert.Equal(t, 422, res.code)
	assert.Contains(t, res.body, "query result has 2 points in 1 series, more than max_points_per_range_query 1")

	// Prometheus's own 11,000 steps per series still applies, before evaluation.
	res = get(t, at, "/api/v1/query_range", url.Values{"query": {"http_requests_total"}, "start": {"0"}, "end": {"11001"}, "step": {"1"}})
	assert.Equal(t, 400, res.code)
	assert.Contains(t, res.body, `"errorType":"bad_data"`)
	assert.Contains(t, res.body, "exceeded maximum resolution of 11,000 points per timeseries")
}

func TestTimeout(t *testing.T) {
	base := startTestExtension(t, func(cfg *Config) { cfg.Timeout = time.Nanosecond })
	res := get(t, base, "/api/v1/query", url.Values{"query": {"http_requests_total"}, "time": {"1700000045"}})
	assert.Equal(t, 503, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"timeout","error":"query timed out in query queue"}`, res.body)
}

func TestStartStorageMissing(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Storage = component.MustNewIDWithName("metricstor", "foo")
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), testHost{component.MustNewID("metricstor"): newTestStore(t, nil)})
	require.EqualError(t, err, `promql: storage extension "metricstor/foo" not found`)
	require.NoError(t, ext.Shutdown(context.Background()))
}

func TestStartStorageWrongType(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	id := component.MustNewID("zpages")
	cfg.Storage = id
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	notStore := struct {
		component.StartFunc
		component.ShutdownFunc
	}{}
	err = ext.Start(context.Background(), testHost{id: notStore})
	require.ErrorContains(t, err, `promql: extension "zpages" is not a metricstor storage extension`)
	require.NoError(t, ext.Shutdown(context.Background()))
}

func TestStartPortBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = ln.Addr().String()
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), testHost{cfg.Storage: newTestStore(t, nil)})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), `promql: listen on "`+ln.Addr().String()+`": `), err.Error())
	require.NoError(t, ext.Shutdown(context.Background()))
}

func TestShutdownWithoutStart(t *testing.T) {
	ext, err := NewFactory().Create(context.Background(), nopSettings(), createDefaultConfig())
	require.NoError(t, err)
	require.NoError(t, ext.Shutdown(context.Background()))
}

func TestDependencies(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = component.MustNewIDWithName("metricstor", "primary")
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	assert.Equal(t, []component.ID{cfg.Storage}, ext.(*promqlExtension).Dependencies())
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	assert.Equal(t, metadata.Type, f.Type())
	assert.Equal(t, component.StabilityLevelDevelopment, f.Stability())
	require.NoError(t, componenttest.CheckConfigStruct(f.CreateDefaultConfig()))
}

// nopSettings is extensiontest.NewNopSettings without adding that module to go.mod.
func nopSettings() extension.Settings {
	return extension.Settings{
		ID:                component.NewID(metadata.Type),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
}

func TestNotReadyAfterShutdownBegins(t *testing.T) {
	var ready atomic.Bool
	h := readyGate(&ready, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	for path, want := range map[string]int{"/-/healthy": 200, "/-/ready": 503, "/api/v1/query": 503} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, path)
	}
	ready.Store(true)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
	assert.Equal(t, 200, rec.Code)
}

func TestStoreNotRunningIsUnavailable(t *testing.T) {
	store := newTestStore(t, nil)
	q := notReadyQueryable{failingQueryable{store, mstorage.ErrNotRunning}}
	_, err := q.Querier(0, 1)
	require.ErrorIs(t, err, tsdb.ErrNotReady)
	require.ErrorIs(t, err, mstorage.ErrNotRunning)
	_, err = q.ChunkQuerier(0, 1)
	require.ErrorIs(t, err, tsdb.ErrNotReady)

	other := errors.New("disk on fire")
	_, err = notReadyQueryable{failingQueryable{store, other}}.Querier(0, 1)
	require.Equal(t, other, err)
}

type failingQueryable struct {
	promstorage.SampleAndChunkQueryable
	err error
}

func (f failingQueryable) Querier(int64, int64) (promstorage.Querier, error) { return nil, f.err }
func (f failingQueryable) ChunkQuerier(int64, int64) (promstorage.ChunkQuerier, error) {
	return nil, f.err
}
