package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// rwSend posts a remote write 1.0 request as Prometheus does and returns the status and body.
// rwSendV1 posts req as remote write 1.0 and returns the status and body.
func rwSendV1(t *testing.T, url string, req *prompb.WriteRequest) (int, string) {
	t.Helper()
	msg, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	code, body, _ := rwSend(t, url, ctRW1, snappy.Encode(nil, msg))
	return code, body
}

func rwTimeseries(ts int64, v float64, kv ...string) prompb.TimeSeries {
	var ls []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}}
}

// instantVector runs an instant query through the binary's API and returns the result by series.
func instantVector(t *testing.T, ports harness.Ports, query string, ts time.Time) map[string]float64 {
	t.Helper()
	res, warn, _, err := newAPI(t, ports).Query(queryCtx(t), query, ts)
	if err != nil {
		t.Fatalf("query %s: %s", query, apiError(err))
	}
	checkNoWarnings(t, query, warn)
	out := map[string]float64{}
	for _, s := range vectorOf(t, query, res) {
		out[s.Metric.String()] = float64(s.Value)
	}
	return out
}

// TestLimitsRemoteWrite runs the binary with small series limits and pushes remote write
// requests in which some series are past a limit: the response is 400 naming the limit, the
// other series of the request are stored and queryable, a series past active_series is refused
// while the active ones go on being written, and a range query past
// max_points_per_range_query fails with 422 naming it.
func TestLimitsRemoteWrite(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.StorageYAML = "limits:\n  labels_per_series: 4\n  label_value_length: 32\n  active_series: 3\n"
	cfg.PromQLYAML = "max_points_per_range_query: 4\n"
	proc := harness.StartReady(t, "metricstor (limits)", binary, cfg.Write(t), cfg.Ports)
	rwURL := "http://" + harness.Addr(cfg.RemoteWrite) + "/api/v1/write"
	waitListening(t, proc, rwURL)

	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	ms := t0.UnixMilli()
	code, body := rwSendV1(t, rwURL, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		rwTimeseries(ms, 1, "__name__", "lim_ok", "job", "a", "instance", "x", "i", "1"), // 4 labels: at the limit
		rwTimeseries(ms, 2, "__name__", "lim_wide", "job", "a", "instance", "x", "i", "2", "extra", "e"),
		rwTimeseries(ms, 3, "__name__", "lim_ok", "job", "b", "instance", strings.Repeat("v", 32)), // at the value limit
		rwTimeseries(ms, 4, "__name__", "lim_long", "job", strings.Repeat("w", 33)),
	}})
	if code != http.StatusBadRequest {
		t.Fatalf("request with series past the limits: %d %s, want 400", code, body)
	}
	for _, want := range []string{"limit exceeded", "series has 5 labels, more than limits.labels_per_series 4", `lim_wide`} {
		if !strings.Contains(body, want) {
			t.Errorf("response body does not name the limit (%q): %s", want, body)
		}
	}
	t.Logf("400 body: %s", body)

	got := instantVector(t, cfg.Ports, `{__name__=~"lim_.*"}`, t0)
	want := map[string]float64{
		`lim_ok{i="1", instance="x", job="a"}`:                        1,
		`lim_ok{instance="` + strings.Repeat("v", 32) + `", job="b"}`: 3,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored after a partial rejection:\n got %v\nwant %v", got, want)
	}

	// Two series are active; a third fits, a fourth is refused while the active ones are written.
	ms2 := ms + 15_000
	code, body = rwSendV1(t, rwURL, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		rwTimeseries(ms2, 10, "__name__", "lim_ok", "job", "a", "instance", "x", "i", "1"),
		rwTimeseries(ms2, 11, "__name__", "lim_third", "job", "c"),
		rwTimeseries(ms2, 12, "__name__", "lim_fourth", "job", "d"),
		rwTimeseries(ms2, 13, "__name__", "lim_ok", "job", "b", "instance", strings.Repeat("v", 32)),
	}})
	if code != http.StatusBadRequest || !strings.Contains(body, "limits.active_series is 3") || !strings.Contains(body, "lim_fourth") {
		t.Fatalf("request past active_series: %d %s, want 400 naming limits.active_series", code, body)
	}
	got = instantVector(t, cfg.Ports, `{__name__=~"lim_.*"}`, t0.Add(15*time.Second))
	want = map[string]float64{
		`lim_ok{i="1", instance="x", job="a"}`:                        10,
		`lim_ok{instance="` + strings.Repeat("v", 32) + `", job="b"}`: 13,
		`lim_third{job="c"}`:                                          11,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stored at the active series limit:\n got %v\nwant %v", got, want)
	}

	// Over 2 steps the three series have 5 points (lim_third has none at t0), one past
	// max_points_per_range_query; the two lim_ok series have 4, at the limit.
	params := url.Values{
		"query": {`{__name__=~"lim_.*"}`}, "step": {"15"},
		"start": {strconv.FormatInt(t0.Unix(), 10)}, "end": {strconv.FormatInt(t0.Unix()+15, 10)},
	}
	code, resp := getAPI(t, cfg.Ports, "/api/v1/query_range", params)
	if code != http.StatusUnprocessableEntity || resp.ErrorType != "execution" ||
		!strings.Contains(resp.Error, "query result has 5 points in 3 series, more than max_points_per_range_query 4") {
		t.Errorf("range query past max_points_per_range_query: %d %s %s", code, resp.ErrorType, resp.Error)
	}
	params.Set("query", `lim_ok`)
	if code, resp := getAPI(t, cfg.Ports, "/api/v1/query_range", params); code != http.StatusOK {
		t.Errorf("range query at max_points_per_range_query: %d %s %s", code, resp.ErrorType, resp.Error)
	}
}

// dataDirSize is the bytes of the files under dir (what du --apparent-size counts).
func dataDirSize(t *testing.T, dir string) int64 {
	t.Helper()
	n, err := harness.DirBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRetentionSize runs the binary with one-minute partitions and a small retention_size,
// pushes old data across many partitions through remote write, and watches the store drop the
// oldest partitions: queries over them come back empty while the newer ones keep every series,
// and the data directory shrinks back under the limit. The same holds after kill -9 and a
// restart.
func TestRetentionSize(t *testing.T) {
	// 60 partitions of about 1.6 MB each, on top of about 30 MB of fixed costs (Pebble's
	// write-ahead log files kept for reuse, the series' labels): 64 MB keeps some 20 partitions.
	const (
		parts   = 60
		series  = 1000
		padLen  = 2000
		limitMB = 64
	)
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.PartitionDuration = "1m"
	cfg.Retention = "0s" // no time retention: only the size drops partitions
	cfg.StorageYAML = fmt.Sprintf("retention_size: %dMB\n", limitMB)
	configPath := cfg.Write(t)
	proc := harness.StartReady(t, "metricstor (retention_size)", binary, configPath, cfg.Ports)
	rwURL := "http://" + harness.Addr(cfg.RemoteWrite) + "/api/v1/write"
	waitListening(t, proc, rwURL)

	// Every series carries a long random label value, so that each partition's index (which
	// repeats the label pairs of its series) weighs about a megabyte and a half on disk.
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	pads := make([]string, series)
	for i := range pads {
		b := make([]byte, padLen)
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		pads[i] = string(b)
	}
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	sampleAt := func(p int) time.Time { return base.Add(time.Duration(p)*time.Minute + 30*time.Second) }
	for p := range parts {
		req := &prompb.WriteRequest{}
		for i := range series {
			ts := prompb.TimeSeries{Labels: []prompb.Label{
				{Name: "__name__", Value: "fill"}, {Name: "i", Value: strconv.Itoa(i)}, {Name: "pad", Value: pads[i]},
			}}
			for _, at := range []time.Time{base.Add(time.Duration(p) * time.Minute), sampleAt(p)} {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: at.UnixMilli(), Value: float64(p)})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		if code, body := rwSendV1(t, rwURL, req); code != http.StatusNoContent {
			t.Fatalf("push partition %d: %d %s", p, code, body)
		}
	}
	t.Logf("pushed %d partitions of %d series: data directory %d bytes, retention_size %d MB",
		parts, series, dataDirSize(t, cfg.DataDir), limitMB)

	// kept reads which partitions still answer: each must have all its series or none.
	kept := func() []int {
		var out []int
		for p := range parts {
			got := instantVector(t, cfg.Ports, `count(count_over_time(fill[30s]))`, sampleAt(p))
			switch got["{}"] {
			case series:
				out = append(out, p)
			case 0:
			default:
				t.Fatalf("partition %d has %v of %d series", p, got, series)
			}
		}
		return out
	}
	limit := int64(limitMB) << 20
	check := func(what string) {
		t.Helper()
		// Retention runs once a minute; the deadline is only there to end a broken run.
		deadline := time.Now().Add(5 * time.Minute)
		for {
			size := dataDirSize(t, cfg.DataDir)
			oldest := instantVector(t, cfg.Ports, `count(count_over_time(fill[30s]))`, sampleAt(0))
			if size <= limit && len(oldest) == 0 {
				k := kept()
				t.Logf("%s: partitions %v kept, data directory %d bytes (limit %d)", what, k, size, limit)
				if len(k) < 2 || k[len(k)-1] != parts-1 {
					t.Fatalf("%s: kept %v: the newest partitions must stay", what, k)
				}
				for i, p := range k {
					if p != k[0]+i {
						t.Fatalf("%s: kept %v: only the oldest partitions may go", what, k)
					}
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: partitions %v kept, data directory %d bytes, retention_size %d\n%s", what, kept(), size, limit, proc.Output())
			}
			time.Sleep(5 * time.Second)
		}
	}
	check("after retention")
	before := kept()

	// Dropped partitions stay dropped after kill -9, and the kept ones keep every series.
	proc.Kill()
	proc = harness.StartReady(t, "metricstor (retention_size, after kill -9)", binary, configPath, cfg.Ports)
	if got := kept(); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("after kill -9: partitions %v kept, before %v", got, before)
	}
	check("after kill -9")
}
