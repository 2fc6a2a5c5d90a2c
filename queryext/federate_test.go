package queryext

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	mstorage "github.com/metricstor/metricstor/storage"
)

// fedNow is the time the federation handler under test sees as now.
var fedNow = time.UnixMilli(t0 + 10*60_000)

// loadFederationData appends, relative to fedNow (lookback 5m):
//   - http_requests_total of a and b, latest samples 30s and 60s before now;
//   - up without an instance label;
//   - gone_total, whose latest sample is older than the lookback delta;
//   - stale_total, ended by a stale marker;
//   - rpc_seconds, an integer native histogram (counter), and queue_depth_hist, a float
//     gauge histogram.
func loadFederationData(t testing.TB, s promstorage.Storage) {
	app := s.AppenderV2(context.Background())
	now := fedNow.UnixMilli()
	add := func(ls labels.Labels, ts int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram) {
		_, err := app.Append(0, ls, 0, ts, v, h, fh, promstorage.AppendV2Options{})
		require.NoError(t, err)
	}
	a := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "a")
	b := labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "b")
	for i, v := range []float64{1, 2, 3} {
		add(a, now-90_000+int64(i)*30_000, v, nil, nil) // last at now-30s
		add(b, now-120_000+int64(i)*30_000, 10*v, nil, nil)
	}
	add(labels.FromStrings("__name__", "up", "job", "api"), now-15_000, 1, nil, nil)
	add(labels.FromStrings("__name__", "gone_total", "job", "api"), now-6*60_000, 5, nil, nil)
	stale := labels.FromStrings("__name__", "stale_total", "job", "api")
	add(stale, now-60_000, 7, nil, nil)
	add(stale, now-30_000, math.Float64frombits(value.StaleNaN), nil, nil)
	add(labels.FromStrings("__name__", "rpc_seconds", "job", "api"), now-20_000, 0, &histogram.Histogram{
		Schema: 1, Count: 5, Sum: 12.5, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{2, 0},
	}, nil)
	add(labels.FromStrings("__name__", "queue_depth_hist", "job", "api"), now-20_000, 0, nil, &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType, Schema: 0, Count: 3, Sum: 4,
		NegativeSpans: []histogram.Span{{Offset: 1, Length: 1}}, NegativeBuckets: []float64{1},
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []float64{2},
	})
	require.NoError(t, app.Commit())
}

func newTestFederation(t testing.TB) (*httptest.Server, *federateHandler) {
	store := newTestStore(t, nil)
	loadFederationData(t, store)
	h := newFederateHandler(store, parser.NewParser(parser.Options{}), 5*time.Minute, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	h.now = func() time.Time { return fedNow }
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

func federate(t *testing.T, base, accept string, match ...string) (int, http.Header, []byte) {
	req, err := http.NewRequest(http.MethodGet, base+"/federate?"+url.Values{"match[]": match}.Encode(), nil)
	require.NoError(t, err)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, body
}

// TestFederateText: the latest sample of each selected series within the lookback delta, in
// Prometheus's text format, one untyped family per name, timestamps as stored; stale markers,
// series past the lookback delta and native histograms (the text format has none) are left
// out; a series without an instance gets instance="".
func TestFederateText(t *testing.T) {
	srv, _ := newTestFederation(t)
	now := fedNow.UnixMilli()
	code, hdr, body := federate(t, srv.URL, "text/plain", `{job="api"}`)
	require.Equal(t, http.StatusOK, code, string(body))
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", hdr.Get("Content-Type"))
	want := "# TYPE http_requests_total untyped\n" +
		`http_requests_total{instance="a",job="api"} 3 ` + itoa(now-30_000) + "\n" +
		`http_requests_total{instance="b",job="api"} 30 ` + itoa(now-60_000) + "\n" +
		"# TYPE up untyped\n" +
		`up{job="api",instance=""} 1 ` + itoa(now-15_000) + "\n"
	assert.Equal(t, want, string(body))

	// A selection: only what the matchers select; two overlapping match[] give each series once.
	code, _, body = federate(t, srv.URL, "text/plain", `http_requests_total{instance="a"}`, `{__name__=~"http_.+"}`, `up`)
	require.Equal(t, http.StatusOK, code, string(body))
	assert.Equal(t, want, string(body))
	code, _, body = federate(t, srv.URL, "text/plain", `up`)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "# TYPE up untyped\n"+`up{job="api",instance=""} 1 `+itoa(now-15_000)+"\n", string(body))

	// No match[]: nothing selected, an empty answer (as Prometheus).
	code, _, body = federate(t, srv.URL, "text/plain")
	require.Equal(t, http.StatusOK, code)
	assert.Empty(t, string(body))
}

// TestFederateProtobuf: Prometheus's scrape Accept header gets delimited protobuf, with the native
// histograms as histogram and gaugehistogram families.
func TestFederateProtobuf(t *testing.T) {
	srv, _ := newTestFederation(t)
	now := fedNow.UnixMilli()
	// What Prometheus 3's scraper sends by default when scrape_protocols puts protobuf first.
	accept := "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,text/plain;version=0.0.4;q=0.2"
	code, hdr, body := federate(t, srv.URL, accept, `{job="api"}`)
	require.Equal(t, http.StatusOK, code, string(body))
	format := expfmt.ResponseFormat(hdr)
	require.Equal(t, expfmt.TypeProtoDelim, format.FormatType(), hdr.Get("Content-Type"))

	dec := expfmt.NewDecoder(strings.NewReader(string(body)), format)
	fams := map[string]*dto.MetricFamily{}
	var names []string
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		names = append(names, mf.GetName())
		fams[mf.GetName()] = &mf
	}
	assert.Equal(t, []string{"http_requests_total", "queue_depth_hist", "rpc_seconds", "up"}, names)

	reqs := fams["http_requests_total"]
	assert.Equal(t, dto.MetricType_UNTYPED, reqs.GetType())
	require.Len(t, reqs.Metric, 2)
	assert.Equal(t, 3.0, reqs.Metric[0].GetUntyped().GetValue())
	assert.Equal(t, now-30_000, reqs.Metric[0].GetTimestampMs())
	assert.Equal(t, "instance=a,job=api", labelString(reqs.Metric[0]))

	rpc := fams["rpc_seconds"]
	assert.Equal(t, dto.MetricType_HISTOGRAM, rpc.GetType())
	require.Len(t, rpc.Metric, 1)
	h := rpc.Metric[0].GetHistogram()
	assert.Equal(t, 5.0, h.GetSampleCountFloat())
	assert.Equal(t, 12.5, h.GetSampleSum())
	assert.Equal(t, int32(1), h.GetSchema())
	assert.Equal(t, 0.001, h.GetZeroThreshold())
	assert.Equal(t, 1.0, h.GetZeroCountFloat())
	assert.Equal(t, []float64{2, 2}, h.GetPositiveCount())
	require.Len(t, h.GetPositiveSpan(), 1)
	assert.Equal(t, uint32(2), h.GetPositiveSpan()[0].GetLength())
	assert.Equal(t, now-20_000, rpc.Metric[0].GetTimestampMs())
	assert.Equal(t, "job=api,instance=", labelString(rpc.Metric[0]))

	gauge := fams["queue_depth_hist"]
	assert.Equal(t, dto.MetricType_GAUGE_HISTOGRAM, gauge.GetType())
	gh := gauge.Metric[0].GetHistogram()
	assert.Equal(t, []float64{1}, gh.GetNegativeCount())
	assert.Equal(t, int32(1), gh.GetNegativeSpan()[0].GetOffset())

	assert.NotContains(t, fams, "stale_total", "a series ended by a stale marker is not federated")
	assert.NotContains(t, fams, "gone_total", "a series past the lookback delta is not federated")
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.Label {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func itoa(ms int64) string { return strconv.FormatInt(ms, 10) }

// TestFederateBadMatch: a match[] that is not a series selector is refused with 400 naming the
// parameter and the parse error (or the selector that would select every series); nothing is
// counted as a federation error.
func TestFederateBadMatch(t *testing.T) {
	srv, h := newTestFederation(t)
	for _, m := range []string{`up{`, `sum(up)`, `{}`} {
		code, _, body := federate(t, srv.URL, "", `up`, m)
		assert.Equal(t, http.StatusBadRequest, code, m)
		assert.Contains(t, string(body), `invalid parameter "match[]": `, m)
	}
	_, _, body := federate(t, srv.URL, "", `{job=~".*"}`)
	assert.Contains(t, string(body), "must contain at least one non-empty matcher")
	assert.Zero(t, testutil.ToFloat64(h.errs))
}

// TestFederateNotReady: a store that is not running gives 503, as Prometheus while its TSDB
// is not open.
func TestFederateNotReady(t *testing.T) {
	h := newFederateHandler(notReadyQueryable{stoppedStore{}}, parser.NewParser(parser.Options{}), 5*time.Minute,
		slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	defer srv.Close()
	code, _, body := federate(t, srv.URL, "", `up`)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, string(body), "not ready")
	assert.Equal(t, 1.0, testutil.ToFloat64(h.errs))
}

// TestFederateThroughExtension: /federate is served by the extension on the API's port.
func TestFederateThroughExtension(t *testing.T) {
	base := startTestExtension(t, nil)
	code, _, body := federate(t, base, "", `up{`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, string(body), `invalid parameter "match[]"`)
	// The test data is from 2023: nothing within the lookback delta of now.
	code, _, body = federate(t, base, "", `http_requests_total`)
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, string(body))

	// Compressed when the client accepts it, as Prometheus's /federate.
	req, err := http.NewRequest(http.MethodGet, base+"/federate?match[]=up", nil)
	require.NoError(t, err)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))

	// The federation and remote read metrics are served with the API's own.
	self := get(t, base, "/api/v1/status/self_metrics", nil)
	assert.Equal(t, http.StatusOK, self.code)
	assert.Contains(t, self.body, "prometheus_web_federation_errors_total")
	assert.Contains(t, self.body, "prometheus_remote_read_handler_queries")

	// Only GET (and HEAD), as Prometheus: 405 otherwise.
	resp, err = http.Post(base+"/federate?match[]=up", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	assert.Equal(t, "GET, HEAD", resp.Header.Get("Allow"))
}

// stoppedStore is a store that is not running.
type stoppedStore struct {
	promstorage.SampleAndChunkQueryable
}

func (stoppedStore) Querier(int64, int64) (promstorage.Querier, error) {
	return nil, mstorage.ErrNotRunning
}

// FuzzFederate sends fuzzed match[] selectors and Accept headers to /federate over the test
// data: the answer is 200 with a body that parses in the negotiated format, or 400 with a
// message; never a 5xx, never a broken connection.
func FuzzFederate(f *testing.F) {
	f.Add(`{job="api"}`, `up`, "text/plain")
	f.Add(`http_requests_total{instance=~"a|b"}`, ``, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited")
	f.Add(`{__name__=~".+"}`, `rpc_seconds`, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text")
	f.Add(`{__name__=~".+"}`, `queue_depth_hist`, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=compact-text")
	f.Add(`up{`, `{}`, "application/openmetrics-text;version=1.0.0")
	f.Add(`{"http_requests_total"}`, `{job!=""}`, "*/*")
	f.Add(`sum(up)`, "\xff", "")

	srv, _ := newTestFederation(f)
	client := &http.Client{Timeout: time.Minute}
	f.Fuzz(func(t *testing.T, m1, m2, accept string) {
		var match []string
		for _, m := range []string{m1, m2} {
			if m != "" {
				match = append(match, m)
			}
		}
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/federate?"+url.Values{"match[]": match}.Encode(), nil)
		require.NoError(t, err)
		if strings.ContainsFunc(accept, func(r rune) bool { return (r < 0x20 && r != '\t') || r == 0x7f }) {
			return // not a header value a client can send
		}
		if accept != "" {
			req.Header["Accept"] = []string{accept}
		}
		resp, err := client.Do(req)
		require.NoError(t, err, "%q %q", match, accept)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		switch resp.StatusCode {
		case http.StatusOK:
			format := expfmt.ResponseFormat(resp.Header)
			if ft := format.FormatType(); ft != expfmt.TypeProtoDelim && ft != expfmt.TypeTextPlain {
				// The protobuf text formats (for debugging) have no decoder in expfmt.
				ct := resp.Header.Get("Content-Type")
				require.True(t, strings.Contains(ct, "encoding=text") || strings.Contains(ct, "encoding=compact-text"), "%q: %s", accept, ct)
				return
			}
			dec := expfmt.NewDecoder(strings.NewReader(string(body)), format)
			for {
				var mf dto.MetricFamily
				err := dec.Decode(&mf)
				if err == io.EOF {
					break
				}
				require.NoError(t, err, "%q %q: %s: %q", match, accept, resp.Header.Get("Content-Type"), body)
			}
		case http.StatusBadRequest:
			require.Contains(t, string(body), "match[]", "%q %q", match, accept)
		default:
			t.Fatalf("%q %q: %s: %s", match, accept, resp.Status, body)
		}
	})
}
