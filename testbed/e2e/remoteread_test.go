package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
)

// rrStep is the interval of the remote read fixture's samples.
const rrStep = 15_000

// rrFixture is the data of the remote read test, from base to base+9m every 15s (37 samples a
// series, over ten one-minute partitions): two counters (one reset), a gauge ended by a stale
// marker and resumed two minutes later, a series of NaN and ±Inf, an integer native histogram
// (counter) and a float gauge histogram. Samples of each series are in time order.
func rrFixture(base int64) []prompb.TimeSeries {
	lbls := func(kv ...string) []prompb.Label {
		var ls []prompb.Label
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		return ls
	}
	a := prompb.TimeSeries{Labels: lbls("__name__", "rr_requests_total", "job", "api", "instance", "a")}
	b := prompb.TimeSeries{Labels: lbls("__name__", "rr_requests_total", "job", "api", "instance", "b")}
	temp := prompb.TimeSeries{Labels: lbls("__name__", "rr_temperature_celsius", "job", "node", "sensor", "été")}
	odd := prompb.TimeSeries{Labels: lbls("__name__", "rr_odd", "job", "node")}
	lat := prompb.TimeSeries{Labels: lbls("__name__", "rr_latency_seconds", "job", "api")}
	queue := prompb.TimeSeries{Labels: lbls("__name__", "rr_queue_depth", "job", "api")}
	// No -0: prompb's generated Marshal leaves out a float field that == 0, so a remote write
	// (or SAMPLES) message cannot carry the sign of -0; it arrives as +0, from Prometheus too.
	oddValues := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, 1.5}
	for i := range 37 {
		ts := base + int64(i)*rrStep
		counterA := float64(10 * i)
		if i >= 20 {
			counterA = float64(3 * (i - 20)) // a counter reset
		}
		a.Samples = append(a.Samples, prompb.Sample{Timestamp: ts, Value: counterA})
		b.Samples = append(b.Samples, prompb.Sample{Timestamp: ts, Value: 1000 + 7.25*float64(i)})
		switch {
		case i < 12:
			temp.Samples = append(temp.Samples, prompb.Sample{Timestamp: ts, Value: 20 + float64(i%5)/4})
		case i == 12:
			temp.Samples = append(temp.Samples, prompb.Sample{Timestamp: ts, Value: math.Float64frombits(value.StaleNaN)})
		case i >= 20:
			temp.Samples = append(temp.Samples, prompb.Sample{Timestamp: ts, Value: 30 - float64(i%3)})
		}
		odd.Samples = append(odd.Samples, prompb.Sample{Timestamp: ts, Value: oddValues[i%len(oddValues)]})
		n := uint64(i + 1)
		lat.Histograms = append(lat.Histograms, prompb.FromIntHistogram(ts, &histogram.Histogram{
			Schema: 1, Count: 5 * n, Sum: 2.5 * float64(n), ZeroThreshold: 1e-128, ZeroCount: n,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 2, Length: 1}},
			PositiveBuckets: []int64{int64(n), 0, int64(n)}, // deltas: n, n, 2n; with the zero bucket 5n
		}))
		queue.Histograms = append(queue.Histograms, prompb.FromFloatHistogram(ts, &histogram.FloatHistogram{
			CounterResetHint: histogram.GaugeType, Schema: 0, Count: float64(3 + i%4), Sum: 1.5 * float64(i%4),
			PositiveSpans: []histogram.Span{{Offset: -1, Length: 2}}, PositiveBuckets: []float64{1, float64(2 + i%4)},
		}))
	}
	return []prompb.TimeSeries{a, b, temp, odd, lat, queue}
}

// rrDump renders series as sorted lines of labels and samples (float bits, so that NaN, -0 and
// the stale marker compare exactly; histograms in Prometheus's string form).
func rrDump(t *testing.T, ss promstorage.SeriesSet) []string {
	t.Helper()
	var out []string
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		var sb strings.Builder
		sb.WriteString(s.Labels().String())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&sb, " %d:%x", ts, math.Float64bits(v))
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				// An integer histogram read as float gives the same string as the float one the
				// server may have turned it into. Of the counter reset hint only gauge or not
				// counts: a chunk sets "no reset" on the samples after its first, as
				// Prometheus's own TSDB does.
				ts, h := it.AtFloatHistogram(nil)
				kind := "counter"
				if h.CounterResetHint == histogram.GaugeType {
					kind = "gauge"
				}
				fmt.Fprintf(&sb, " %d:%s/%s", ts, h.String(), kind)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, sb.String())
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// rrDumpSent is rrDump of what was sent, for samples in [mint, maxt].
func rrDumpSent(t *testing.T, sent []prompb.TimeSeries, mint, maxt int64) []string {
	t.Helper()
	res := &prompb.QueryResult{}
	for _, s := range sent {
		ts := &prompb.TimeSeries{Labels: s.Labels}
		for _, smp := range s.Samples {
			if smp.Timestamp >= mint && smp.Timestamp <= maxt {
				ts.Samples = append(ts.Samples, smp)
			}
		}
		for _, h := range s.Histograms {
			if h.Timestamp >= mint && h.Timestamp <= maxt {
				ts.Histograms = append(ts.Histograms, h)
			}
		}
		res.Timeseries = append(res.Timeseries, ts)
	}
	return rrDump(t, remote.FromQueryResult(true, res))
}

// rrRead sends one remote read query to url, accepting only the given response type, checks
// that the server answered with that type, and returns the series it read.
func rrRead(t *testing.T, readURL string, rt prompb.ReadRequest_ResponseType, mint, maxt int64, ms ...*labels.Matcher) []string {
	t.Helper()
	q, err := remote.ToQuery(mint, maxt, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, readURL, bytes.NewReader(snappy.Encode(nil, msg)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("remote read %s: %v", readURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("remote read %s: %s: %s", readURL, resp.Status, b)
	}
	ct := resp.Header.Get("Content-Type")
	switch rt {
	case prompb.ReadRequest_SAMPLES:
		if ct != "application/x-protobuf" {
			t.Fatalf("SAMPLES asked, answer is %q", ct)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		var rr prompb.ReadResponse
		if err := rr.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		if len(rr.Results) != 1 {
			t.Fatalf("%d results for 1 query", len(rr.Results))
		}
		return rrDump(t, remote.FromQueryResult(true, rr.Results[0]))
	default:
		if !strings.HasPrefix(ct, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse") {
			t.Fatalf("STREAMED_XOR_CHUNKS asked, answer is %q", ct)
		}
		// Prometheus's own reader of the stream, as its remote read client uses it.
		return rrDump(t, remote.NewChunkedSeriesSet(remote.NewChunkedReader(resp.Body, promconfig.DefaultChunkedReadLimit, nil),
			resp.Body, mint, maxt, func(error) {}))
	}
}

// rrQueries are compared between Metricstor and the Prometheus that reads it remotely.
var rrQueries = []string{
	`rr_requests_total`,
	`{__name__=~"rr_.+"}`,
	`rr_requests_total{instance="b"}`,
	`rate(rr_requests_total[1m])`,
	`sum by (job) (rr_requests_total)`,
	`rr_temperature_celsius`,
	`count_over_time(rr_temperature_celsius[3m])`,
	`last_over_time(rr_temperature_celsius[10m])`,
	`rr_odd`,
	`rr_latency_seconds`,
	`histogram_quantile(0.9, rate(rr_latency_seconds[2m]))`,
	`histogram_count(rr_queue_depth)`,
	`rr_queue_depth`,
	`rr_requests_total offset 2m`,
}

// promAnswer runs a query API request and returns its data with results sorted (the order of
// an instant vector depends on the storage's), failing on an error or a warning: Prometheus
// reports a failed remote read as a warning ("remote_read: error sending request ...").
func promAnswer(t *testing.T, base, path string, params url.Values) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Get(base + path + "?" + params.Encode())
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Status   string   `json:"status"`
		Data     any      `json:"data"`
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != http.StatusOK || r.Status != "success" {
		t.Fatalf("GET %s%s?%s: %d %v %s", base, path, params.Encode(), resp.StatusCode, err, b)
	}
	if len(r.Warnings) > 0 {
		t.Fatalf("GET %s%s?%s: warnings %v", base, path, params.Encode(), r.Warnings)
	}
	d := r.Data.(map[string]any)
	if res, ok := d["result"].([]any); ok {
		sort.Slice(res, func(i, j int) bool { return jsonString(res[i]) < jsonString(res[j]) })
	}
	return jsonString(d)
}

// compareThroughPrometheus asks ms and prom the same instant and range queries and fails on any
// difference, or when Metricstor's answer is empty (a comparison of nothing shows nothing).
func compareThroughPrometheus(t *testing.T, ms, prom string, base int64) {
	t.Helper()
	sec := func(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }
	var asked int
	for _, q := range rrQueries {
		ranges := []url.Values{
			{"query": {q}, "start": {sec(base - 60_000)}, "end": {sec(base + 10*60_000)}, "step": {"15"}},
			// Steps that fall between samples.
			{"query": {q}, "start": {sec(base + 1_234)}, "end": {sec(base + 9*60_000)}, "step": {"7.5"}},
		}
		for _, p := range ranges {
			want := promAnswer(t, ms, "/api/v1/query_range", p)
			if !strings.Contains(want, `"values"`) && !strings.Contains(want, `"histograms"`) {
				t.Errorf("query_range %s: Metricstor's answer is empty: %s", q, want)
			}
			if got := promAnswer(t, prom, "/api/v1/query_range", p); got != want {
				t.Errorf("query_range %v through Prometheus's remote read:\n got %s\nwant %s", p, got, want)
			}
			asked++
		}
		for _, at := range []int64{base + 2*60_000 + 7_000, base + 5*60_000, base + 9*60_000} {
			p := url.Values{"query": {q}, "time": {sec(at)}}
			want := promAnswer(t, ms, "/api/v1/query", p)
			if got := promAnswer(t, prom, "/api/v1/query", p); got != want {
				t.Errorf("query %v through Prometheus's remote read:\n got %s\nwant %s", p, got, want)
			}
			asked++
		}
	}
	t.Logf("%d answers of Prometheus's remote read equal Metricstor's own", asked)
}

// samplesOnlyProxy forwards remote read requests to target after making them accept SAMPLES
// only, as a client older than streamed remote read asks (Prometheus itself always asks for
// streamed chunks first), and counts the SAMPLES answers it passed on.
func samplesOnlyProxy(t *testing.T, target string) (*httptest.Server, *atomic.Int64) {
	var answered atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := remote.DecodeReadRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.AcceptedResponseTypes = []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES}
		msg, err := req.Marshal()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out, err := http.NewRequestWithContext(r.Context(), http.MethodPost, target, bytes.NewReader(snappy.Encode(nil, msg)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		out.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "application/x-protobuf" {
			answered.Add(1)
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &answered
}

// TestRemoteReadMatchesPrometheus pushes floats, a stale marker, NaN/±Inf and native histograms
// by remote write into the binary, over ten one-minute partitions, and then:
//   - reads them back with a protobuf remote read client, as SAMPLES and as STREAMED_XOR_CHUNKS:
//     exactly what was sent, bit for bit;
//   - starts a real Prometheus with no data of its own and `remote_read` (read_recent) on
//     Metricstor: its /api/v1/query and /api/v1/query_range answers equal Metricstor's own for
//     every query of rrQueries (streamed chunks, which Prometheus asks for);
//   - the same with the requests made to accept SAMPLES only (by a proxy in between);
//   - after kill -9 and a restart, the remote read answers are unchanged.
func TestRemoteReadMatchesPrometheus(t *testing.T) {
	binary := harness.Binary(t)
	promBinary := conformance.PrometheusBinary(t)

	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.PartitionDuration = "1m"
	col := harness.NewCollector(t, "metricstor (remote read)", binary, cfg)
	col.Start()
	waitListening(t, col.Proc, cfg.RemoteWriteURL())
	ms := cfg.Ports.PromQLURL()
	readURL := ms + "/api/v1/read"

	// Ten minutes back: inside the out-of-order window of a new series, and every instant query
	// below is within Prometheus's lookback of the data.
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Minute).UnixMilli()
	sent := rrFixture(base)
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &prompb.WriteRequest{Timeseries: sent}); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}
	if n := telemetryGauge(t, cfg.Ports, "metricstor_storage_partitions"); n < 9 {
		t.Fatalf("the data is in %v partitions, want at least 9 (one a minute)", n)
	}

	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", "rr_.+")
	mint, maxt := base-60_000, base+10*60_000
	checkDirect := func(t *testing.T) {
		want := rrDumpSent(t, sent, mint, maxt)
		for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
			if got := rrRead(t, readURL, rt, mint, maxt, all); !equalLines(got, want) {
				t.Errorf("remote read %s: %s", rt, diffLines(got, want))
			}
		}
		// A window inside the data: only its samples (inclusive bounds), of the series with any.
		from, to := base+3*60_000, base+3*60_000+rrStep*2
		want = nonEmpty(rrDumpSent(t, sent, from, to))
		for _, rt := range []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES, prompb.ReadRequest_STREAMED_XOR_CHUNKS} {
			if got := rrRead(t, readURL, rt, from, to, all); !equalLines(got, want) {
				t.Errorf("remote read %s of [%d, %d]: %s", rt, from, to, diffLines(got, want))
			}
		}
	}
	t.Run("protobuf_client", checkDirect)

	t.Run("prometheus_streamed_chunks", func(t *testing.T) {
		prom := conformance.NewPrometheus(t, "prometheus (remote read, streamed)", promBinary,
			fmt.Sprintf("global: {}\nremote_read:\n  - url: %q\n    read_recent: true\n", readURL))
		prom.Start(t)
		defer prom.Stop()
		compareThroughPrometheus(t, ms, prom.URL(), base)
		// It asked for, and got, streamed chunks.
		if n := promCounter(t, prom.URL(), "prometheus_remote_read_client_queries_total", `code="200"`, `response_type="chunked"`); n == 0 {
			t.Error("Prometheus counted no chunked remote read answer")
		}
	})

	t.Run("prometheus_samples", func(t *testing.T) {
		proxy, answered := samplesOnlyProxy(t, readURL)
		prom := conformance.NewPrometheus(t, "prometheus (remote read, samples)", promBinary,
			fmt.Sprintf("global: {}\nremote_read:\n  - url: %q\n    read_recent: true\n", proxy.URL+"/api/v1/read"))
		prom.Start(t)
		defer prom.Stop()
		compareThroughPrometheus(t, ms, prom.URL(), base)
		if answered.Load() == 0 {
			t.Error("Metricstor sent no SAMPLES answer through the proxy")
		}
		if n := promCounter(t, prom.URL(), "prometheus_remote_read_client_queries_total", `code="200"`, `response_type="sampled"`); n == 0 {
			t.Error("Prometheus counted no sampled remote read answer")
		}
	})

	col.Kill()
	col.Start()
	t.Run("protobuf_client_after_kill", checkDirect)
	col.Stop(time.Minute)
}

func equalLines(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// diffLines shows the first differing line of two dumps, and the first differing sample in it.
func diffLines(got, want []string) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d series, want %d:\n got %s\nwant %s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range got {
		if got[i] == want[i] {
			continue
		}
		g, w := strings.Split(got[i], " "), strings.Split(want[i], " ")
		for j := range min(len(g), len(w)) {
			if g[j] != w[j] {
				return fmt.Sprintf("series %d, field %d: got %s, want %s (of %.200s)", i, j, g[j], w[j], want[i])
			}
		}
		return fmt.Sprintf("series %d: %d fields, want %d (of %.200s)", i, len(g), len(w), want[i])
	}
	return "equal"
}

// nonEmpty drops the series without samples: remote read sends no series without data.
func nonEmpty(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, "} ") {
			out = append(out, l)
		}
	}
	return out
}

// telemetryGauge reads one value from the collector's own metrics.
func telemetryGauge(t *testing.T, ports harness.Ports, name string) float64 {
	t.Helper()
	return scrapeValue(t, "http://"+harness.Addr(ports.Telemetry)+"/metrics", name)
}

// promCounter reads a counter from a Prometheus's own /metrics: the sum over its series whose
// labels contain each of the given `name="value"` pairs.
func promCounter(t *testing.T, base, name string, pairs ...string) float64 {
	t.Helper()
	return scrapeValue(t, base+"/metrics", name, pairs...)
}

// scrapeValue returns the sum of the values of the series of metric name, in the text
// exposition at u, whose labels contain every one of pairs. It fails when there is none.
func scrapeValue(t *testing.T, u, name string, pairs ...string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	found := false
Lines:
	for line := range strings.SplitSeq(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		for _, p := range pairs {
			if !strings.Contains(rest, p) {
				continue Lines
			}
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", u, line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("%s has no %s%v:\n%s", u, name, pairs, body)
	}
	return sum
}
