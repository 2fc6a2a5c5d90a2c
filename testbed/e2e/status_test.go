package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/testbed/harness"
)

// Status codes per protocol, end to end through the binary: what a real client is told when the
// store refuses part of a request, and that the rest is stored (read back through the PromQL API).

// dupGauges is one OTLP request of the gauge e2e_status_value of instance: series ok="yes" with
// one point, and series ok="dup" with two points at the same timestamp and different values (what
// telemetrygen sends now and then). The store refuses the second "dup" point as Prometheus does.
func dupGauges(instance string, at time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "status")
	rm.Resource().Attributes().PutStr("service.instance.id", instance)
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("e2e_status_value")
	dps := g.SetEmptyGauge().DataPoints()
	for _, p := range []struct {
		ok string
		v  float64
	}{{"yes", 1}, {"dup", 2}, {"dup", 3}} {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.SetDoubleValue(p.v)
		dp.Attributes().PutStr("ok", p.ok)
	}
	return md
}

// rawSamples returns the raw samples of every series matching selector in the 15 minutes before
// at, keyed by label set.
func rawSamples(t *testing.T, ports harness.Ports, selector string, at time.Time) map[string][]model.SamplePair {
	t.Helper()
	q := selector + "[15m]"
	res, _, _, err := newAPI(t, ports).Query(queryCtx(t), q, at)
	if err != nil {
		t.Fatalf("query %s: %s", q, apiError(err))
	}
	m, ok := res.(model.Matrix)
	if !ok {
		t.Fatalf("query %s: %s, want a matrix", q, res.Type())
	}
	out := map[string][]model.SamplePair{}
	for _, s := range m {
		out[labelsOf(model.LabelSet(s.Metric)).String()] = s.Values
	}
	return out
}

// checkSamples compares raw samples with want (label set -> values at `at`), values exactly.
func checkSamples(t *testing.T, what string, got map[string][]model.SamplePair, want map[string][]float64, at time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d series %v, want %d %v", what, len(got), got, len(want), want)
	}
	for k, vs := range want {
		g := got[k]
		if len(g) != len(vs) {
			t.Errorf("%s: series %s has %v, want values %v", what, k, g, vs)
			continue
		}
		for i, v := range vs {
			if float64(g[i].Value) != v || g[i].Timestamp.Time().UnixMilli() != at.UnixMilli() {
				t.Errorf("%s: series %s sample %d = %v, want %v at %d", what, k, i, g[i], v, at.UnixMilli())
			}
		}
	}
}

// TestOTLPDuplicateAnswers: an OTLP request with a duplicate sample gets InvalidArgument (gRPC) /
// 400 (HTTP) naming the refused sample and that the rest was stored, not Internal / 500; the good
// points are queryable; a request that is entirely good gets OK / 200 (pushGRPC, pushHTTP).
func TestOTLPDuplicateAnswers(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	harness.StartReady(t, "metricstor", binary, cfg.Write(t), cfg.Ports)
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	const refused = "store rejected 1 of 3 samples (duplicate=1), the other 2 were stored"

	// gRPC, with the pdata OTLP gRPC client (what the collector's otlp exporter uses).
	conn, err := grpc.NewClient(cfg.Ports.OTLPGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(dupGauges("grpc", at)))
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), refused) || !strings.Contains(st.Message(), `ok="dup"`) {
		t.Errorf("gRPC export with a duplicate: %s %q, want InvalidArgument naming %q and the series", st.Code(), st.Message(), refused)
	}

	// HTTP, protobuf: 400 with a google.rpc.Status body.
	body, err := pmetricotlp.NewExportRequestFromMetrics(dupGauges("http", at)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(cfg.Ports.OTLPHTTPURL()+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(respBody, []byte(refused)) {
		t.Errorf("HTTP export with a duplicate: %s %q, want 400 naming %q", resp.Status, respBody, refused)
	}

	got := rawSamples(t, cfg.Ports, `e2e_status_value`, at.Add(time.Second))
	want := map[string][]float64{}
	for _, inst := range []string{"grpc", "http"} {
		want[`{__name__="e2e_status_value", instance="`+inst+`", job="status", ok="yes"}`] = []float64{1}
		want[`{__name__="e2e_status_value", instance="`+inst+`", job="status", ok="dup"}`] = []float64{2} // the first value wins
	}
	checkSamples(t, "after the refused duplicates", got, want, at)

	// Entirely good requests: OK and 200 with no partial success (the helpers fail otherwise).
	next := at.Add(time.Second)
	good := func(instance string) pmetric.Metrics {
		md := dupGauges(instance, next)
		dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints()
		dps.RemoveIf(func(dp pmetric.NumberDataPoint) bool { return dp.DoubleValue() == 3 })
		return md
	}
	pushGRPC(t, cfg.Ports, good("grpc"))
	pushHTTP(t, cfg.Ports, good("http"))
}

// rwSend posts a marshaled remote write message as Prometheus does and returns the answer.
func rwSend(t *testing.T, url, contentType string, body []byte) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

const (
	ctRW1 = "application/x-protobuf;proto=prometheus.WriteRequest"
	ctRW2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// TestRemoteWriteStatusCodes runs the default config.yaml: 415 for a content type that is not
// protobuf whatever the body (prometheus/compliance TestBadContentTypes); a duplicate (2.0) or a
// too old sample (1.0) is 400 with the store's reason, the rest of the request is stored and the
// 2.0 Written headers count it.
func TestRemoteWriteStatusCodes(t *testing.T) {
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	proc := harness.StartReady(t, "metricstor (remote write)", binary, configPath, ports)
	waitListening(t, proc, url)

	one := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: []prompb.Label{{Name: "__name__", Value: "up"}}, Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
	}}}
	b, err := one.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	corrupt := snappy.Encode(nil, b)
	corrupt[0] = '0'
	for _, ct := range []string{"application/json", "image/png"} {
		if code, body, _ := rwSend(t, url, ct, corrupt); code != http.StatusUnsupportedMediaType {
			t.Errorf("Content-Type %s: %d %q, want 415", ct, code, body)
		}
	}

	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	ms := at.UnixMilli()
	// 2.0: series a has two samples at one timestamp with different values; b is good.
	st := writev2.NewSymbolTable()
	v2 := writev2.Request{Timeseries: []writev2.TimeSeries{
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw_status", "s", "a"), nil), Samples: []writev2.Sample{{Timestamp: ms, Value: 1}, {Timestamp: ms, Value: 2}}},
		{LabelsRefs: st.SymbolizeLabels(labels.FromStrings("__name__", "rw_status", "s", "b"), nil), Samples: []writev2.Sample{{Timestamp: ms, Value: 3}}},
	}}
	v2.Symbols = st.Symbols()
	if b, err = v2.Marshal(); err != nil {
		t.Fatal(err)
	}
	code, body, hdr := rwSend(t, url, ctRW2, snappy.Encode(nil, b))
	if code != http.StatusBadRequest || !strings.Contains(body, "duplicate=1") || !strings.Contains(body, `s="a"`) {
		t.Errorf("2.0 with a duplicate: %d %q, want 400 naming the duplicate of series a", code, body)
	}
	if got := hdr.Get("X-Prometheus-Remote-Write-Samples-Written"); got != "2" {
		t.Errorf("2.0 with a duplicate: samples written header %q, want 2", got)
	}

	// 1.0: series c's first sample is an hour older than its second one, beyond the store's
	// out_of_order_window (10m): too old; series d is good.
	v1 := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: []prompb.Label{{Name: "__name__", Value: "rw_status"}, {Name: "s", Value: "c"}}, Samples: []prompb.Sample{{Timestamp: ms, Value: 4}}},
	}}
	if b, err = v1.Marshal(); err != nil {
		t.Fatal(err)
	}
	rwPost(t, url, ctRW1, b)
	v1.Timeseries[0].Samples = []prompb.Sample{{Timestamp: ms - time.Hour.Milliseconds(), Value: 5}}
	v1.Timeseries = append(v1.Timeseries, prompb.TimeSeries{
		Labels: []prompb.Label{{Name: "__name__", Value: "rw_status"}, {Name: "s", Value: "d"}}, Samples: []prompb.Sample{{Timestamp: ms, Value: 6}},
	})
	if b, err = v1.Marshal(); err != nil {
		t.Fatal(err)
	}
	code, body, _ = rwSend(t, url, ctRW1, snappy.Encode(nil, b))
	if code != http.StatusBadRequest || !strings.Contains(body, "too_old=1") || !strings.Contains(body, "too old sample") {
		t.Errorf("1.0 with a too old sample: %d %q, want 400 naming it", code, body)
	}

	checkSamples(t, "after the refusals", rawSamples(t, ports, "rw_status", at.Add(time.Second)), map[string][]float64{
		`{__name__="rw_status", s="a"}`: {1},
		`{__name__="rw_status", s="b"}`: {3},
		`{__name__="rw_status", s="c"}`: {4},
		`{__name__="rw_status", s="d"}`: {6},
	}, at)
}

// TestRemoteWriteMaxSeriesPerRequest: with max_series_per_request: 3 a request of 3 series is
// written and one of 4 is refused whole with 400 naming the limit.
func TestRemoteWriteMaxSeriesPerRequest(t *testing.T) {
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	text, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "endpoint: " + strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/api/v1/write")
	if !strings.Contains(string(text), endpoint) {
		t.Fatalf("config has no %q:\n%s", endpoint, text)
	}
	configPath = harness.WriteFile(t, "config.yaml", strings.Replace(string(text), endpoint, endpoint+"\n    max_series_per_request: 3", 1))
	proc := harness.StartReady(t, "metricstor (remote write)", binary, configPath, ports)
	waitListening(t, proc, url)

	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	request := func(batch string, n int) []byte {
		var req prompb.WriteRequest
		for i := range n {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "rw_limit"}, {Name: "batch", Value: batch}, {Name: "i", Value: strconv.Itoa(i)}},
				Samples: []prompb.Sample{{Timestamp: at.UnixMilli(), Value: float64(i)}},
			})
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rwPost(t, url, ctRW1, request("at", 3))
	code, body, _ := rwSend(t, url, ctRW1, snappy.Encode(nil, request("past", 4)))
	if code != http.StatusBadRequest || !strings.Contains(body, "request has 4 series, more than max_series_per_request (3)") {
		t.Errorf("4 series: %d %q, want 400 naming max_series_per_request (3)", code, body)
	}
	checkSamples(t, "after the limit", rawSamples(t, ports, "rw_limit", at.Add(time.Second)), map[string][]float64{
		`{__name__="rw_limit", batch="at", i="0"}`: {0},
		`{__name__="rw_limit", batch="at", i="1"}`: {1},
		`{__name__="rw_limit", batch="at", i="2"}`: {2},
	}, at)
}
