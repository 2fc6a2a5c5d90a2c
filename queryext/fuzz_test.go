package queryext

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promdata "github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	mstorage "github.com/metricstor/metricstor/storage"
)

// fuzzEndpoints are the API paths FuzzHTTPAPI sends its parameters to ({name} is replaced by the
// fuzzed label name), and whether they take POST (a form) besides GET, as in Prometheus.
var fuzzEndpoints = []struct {
	path string
	post bool
}{
	{"/api/v1/query", true},
	{"/api/v1/query_range", true},
	{"/api/v1/series", true},
	{"/api/v1/labels", true},
	{"/api/v1/label/{name}/values", false},
	{"/api/v1/metadata", false},
	{"/api/v1/query_exemplars", true},
	{"/api/v1/format_query", true},
	{"/api/v1/parse_query", true},
}

// startFuzzAPI starts the extension on 127.0.0.1:0 over the real metricstor store on a temporary
// directory, loaded with a few float series (one with an exemplar), a native histogram and
// metadata. One per fuzzing process. The query timeout is short so that an expensive query ends
// as a timeout instead of holding the fuzzer.
func startFuzzAPI(f *testing.F) string {
	ctx := context.Background()
	sf := mstorage.NewFactory()
	scfg := sf.CreateDefaultConfig().(*mstorage.Config)
	scfg.Directory = f.TempDir()
	scfg.Retention = 0
	sid := component.NewID(sf.Type())
	ext, err := sf.Create(ctx, extension.Settings{ID: sid, TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}, scfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := ext.Start(ctx, componenttest.NewNopHost()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = ext.Shutdown(ctx) })
	store := ext.(mstorage.Store)

	app := store.AppenderV2(ctx)
	counterMeta := promstorage.AOptions{MetricFamilyName: "http_requests_total", Metadata: promdata.Metadata{Type: "counter", Help: "Total requests."}}
	for _, inst := range []string{"a", "b", "é\u2028"} {
		ls := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", inst)
		for i := range int64(20) {
			opts := counterMeta
			if i == 19 {
				opts.Exemplars = []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "abc"), Value: 1, Ts: t0 + i*15_000, HasTs: true}}
			}
			if _, err := app.Append(0, ls, 0, t0+i*15_000, float64(i), nil, nil, opts); err != nil {
				f.Fatal(err)
			}
		}
	}
	h := &histogram.Histogram{Schema: 0, Count: 5, Sum: 12.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0}}
	hl := labels.FromStrings("__name__", "request_duration_seconds", "job", "api")
	hOpts := promstorage.AOptions{MetricFamilyName: "request_duration_seconds", Metadata: promdata.Metadata{Type: "histogram", Help: "Request duration.", Unit: "seconds"}}
	for i := range int64(20) {
		if _, err := app.Append(0, hl, 0, t0+i*15_000, 0, h, nil, hOpts); err != nil {
			f.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		f.Fatal(err)
	}

	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.Timeout = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	q, err := NewFactory().Create(ctx, nopSettings(), cfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := q.Start(ctx, testHost{cfg.Storage: ext}); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = q.Shutdown(ctx) })
	if err := q.(*promqlExtension).Ready(); err != nil {
		f.Fatal(err)
	}
	return "http://" + q.(*promqlExtension).addr.String()
}

// FuzzHTTPAPI sends fuzzed parameters (query, time, start, end, step, timeout, match[], limit, a
// label name in the path, GET or POST form) to the Prometheus HTTP API served by the extension
// over a small real store. Bad input must be the client's error: never a 5xx other than a query
// timeout (503, errorType timeout, as Prometheus), never a broken connection, always the API's
// JSON envelope, and an error always has an errorType and a message. Seed corpus: valid requests
// of every endpoint and testdata/fuzz/FuzzHTTPAPI.
func FuzzHTTPAPI(f *testing.F) {
	start, end := "1700000000", "1700000285"
	for i := range fuzzEndpoints {
		f.Add(uint8(i), false, `rate(http_requests_total{job="api"}[1m])`, "1700000100", start, end, "15s", "", `{job="api"}`, "", "job")
	}
	f.Add(uint8(0), true, `histogram_quantile(0.9, rate(request_duration_seconds[1m]))`, "2023-11-14T22:15:00Z", "", "", "", "10s", "", "", "")
	f.Add(uint8(1), false, `sum by (instance) (http_requests_total) @ end()`, "", start, end, "0.001", "1m", "", "", "")
	f.Add(uint8(1), false, `max_over_time(http_requests_total[1h:1s])`, "", "-1e300", "1e300", "1e-300", "", "", "", "")
	f.Add(uint8(2), false, "", "", "NaN", "+Inf", "", "", `{__name__=~".+"}`, "-1", "")
	f.Add(uint8(4), true, "", "", "", "", "", "", `{__name__!=""}`, "1", "\xff")
	f.Add(uint8(5), false, "", "", "", "", "", "", "", "9223372036854775807", "")

	base := startFuzzAPI(f)
	client := &http.Client{Timeout: time.Minute}
	f.Fuzz(func(t *testing.T, endpoint uint8, post bool, query, at, start, end, step, timeout, match, limit, name string) {
		ep := fuzzEndpoints[int(endpoint)%len(fuzzEndpoints)]
		path := strings.ReplaceAll(ep.path, "{name}", url.PathEscape(name))
		post = post && ep.post
		params := url.Values{}
		set := func(k, v string) {
			if v != "" {
				params.Set(k, v)
			}
		}
		set("query", query)
		set("time", at)
		set("start", start)
		set("end", end)
		set("step", step)
		set("timeout", timeout)
		set("match[]", match)
		set("limit", limit)
		set("metric", name)
		var resp *http.Response
		var err error
		if post {
			resp, err = client.PostForm(base+path, params)
		} else {
			resp, err = client.Get(base + path + "?" + params.Encode())
		}
		if err != nil {
			t.Fatalf("%s %v: %v", path, params, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %v: read body: %v", path, params, err)
		}
		if resp.StatusCode == http.StatusNotFound && strings.Contains(ep.path, "{name}") && !strings.HasPrefix(string(body), "{") {
			// The label name made a path that matches no route (empty: /label//values); the
			// router answers 404 in plain text, as Prometheus's does.
			return
		}
		if resp.StatusCode == http.StatusNoContent && len(body) == 0 {
			// Prometheus's API answers 204 when there is no data at all (query_exemplars of a
			// query without selectors, such as `0`).
			return
		}
		var env struct {
			Status    string          `json:"status"`
			ErrorType string          `json:"errorType"`
			Error     string          `json:"error"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("%s %v: %s, body is not the API's JSON envelope (%v): %q", path, params, resp.Status, err, body)
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if env.Status != "success" {
				t.Fatalf("%s %v: 200 with status %q: %s", path, params, env.Status, body)
			}
		case resp.StatusCode == http.StatusServiceUnavailable && env.ErrorType == "timeout":
			// The query ran into the timeout: Prometheus's answer too.
		case resp.StatusCode >= 500:
			t.Fatalf("%s %v: %s for client input: %s", path, params, resp.Status, body)
		default:
			if env.Status != "error" || env.ErrorType == "" || env.Error == "" {
				t.Fatalf("%s %v: %s without an errorType and message: %s", path, params, resp.Status, body)
			}
		}
	})
}
