package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestSplitRangeQueriesSameAnswer runs two binaries, one splitting long range queries into 4
// parts (range_query_parallelism: 4) and one evaluating every query whole (1), writes the same
// 6 hours of counters, gauges and a classic histogram to both over remote write 1.0, and runs
// range queries of 721 steps through both APIs: the answers, errors and status codes are the
// same byte for byte, and the warnings and infos are the same set (the API lists them in map
// order).
func TestSplitRangeQueriesSameAnswer(t *testing.T) {
	binary := harness.Binary(t)
	type server struct {
		cfg   harness.Config
		rwURL string
	}
	var servers []server
	for _, parallelism := range []int{4, 1} {
		cfg := harness.NewConfig(t)
		cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
		cfg.PromQLYAML = fmt.Sprintf("range_query_parallelism: %d\n", parallelism)
		proc := harness.StartReady(t, fmt.Sprintf("metricstor (range_query_parallelism %d)", parallelism), binary, cfg.Write(t), cfg.Ports)
		rwURL := "http://" + harness.Addr(cfg.RemoteWrite) + "/api/v1/write"
		waitListening(t, proc, rwURL)
		servers = append(servers, server{cfg, rwURL})
	}

	// 6 hours, 15 s apart, ending a minute ago: 1,440 samples a series, sent oldest first, 40
	// timestamps a request.
	const interval = 15 * time.Second
	end := time.Now().Add(-time.Minute).Truncate(time.Minute)
	start := end.Add(-6 * time.Hour)
	buckets := []string{"0.1", "0.5", "1", "5", "+Inf"}
	var req prompb.WriteRequest
	flush := func() {
		for _, s := range servers {
			if code, body := rwSendV1(t, s.rwURL, &req); code/100 != 2 {
				t.Fatalf("remote write: %d %s", code, body)
			}
		}
		req.Timeseries = req.Timeseries[:0]
	}
	for i, ts := 0, start; !ts.After(end); i, ts = i+1, ts.Add(interval) {
		ms := ts.UnixMilli()
		for h := range 5 {
			inst := fmt.Sprintf("host-%d", h)
			for _, mode := range []string{"idle", "user", "system"} {
				// Counters with a reset every 2 hours on host-0.
				v := float64(i*(h+1)) * map[string]float64{"idle": 1.5, "user": 0.25, "system": 0.125}[mode]
				if h == 0 {
					v = float64(i%480) * 1.5
				}
				req.Timeseries = append(req.Timeseries, rwTimeseries(ms, v, "__name__", "split_cpu_seconds_total", "instance", inst, "mode", mode))
			}
			req.Timeseries = append(req.Timeseries,
				rwTimeseries(ms, 40+float64((i*7+h*13)%23)/3, "__name__", "split_temp_celsius", "instance", inst),
				rwTimeseries(ms, float64(i*(h+2)), "__name__", "split_requests", "instance", inst)) // a counter without _total
			for b, le := range buckets {
				req.Timeseries = append(req.Timeseries, rwTimeseries(ms, float64(i*(b+1+h%2)), "__name__", "split_latency_seconds_bucket", "instance", inst, "le", le))
			}
		}
		if (i+1)%40 == 0 {
			flush()
		}
	}
	if len(req.Timeseries) > 0 {
		flush()
	}

	// 721 steps of 30 s: 4 parts of about 180 steps on the splitting server.
	queries := []string{
		`rate(split_cpu_seconds_total[5m])`,
		`sum by (mode) (rate(split_cpu_seconds_total{mode!="idle"}[5m]))`,
		`avg by (mode) (irate(split_cpu_seconds_total[5m]))`,
		`avg_over_time(split_temp_celsius[10m])`,
		`deriv(split_temp_celsius[15m])`,
		`topk(2, rate(split_cpu_seconds_total[5m]))`,
		`quantile(0.9, rate(split_cpu_seconds_total[5m]))`,
		`increase(split_cpu_seconds_total[1h])`,
		`count(split_temp_celsius)`,
		`histogram_quantile(0.9, sum by (le, instance) (rate(split_latency_seconds_bucket[5m])))`,
		`max_over_time(rate(split_cpu_seconds_total[2m])[30m:1m])`,
		`rate(split_requests[5m])`,                                              // an info: not a counter name
		`rate(split_temp_celsius[5m])`,                                          // the same info, for a gauge
		`split_temp_celsius * on (instance) group_left split_cpu_seconds_total`, // error: many-to-many
		`split_temp_celsius @ start()`,                                          // kept whole
		`1 - split_temp_celsius / on (instance) max by (instance) (split_temp_celsius)`,
	}
	infos, errs := 0, 0
	for _, q := range queries {
		var answers [2]splitAPIAnswer
		for i, s := range servers {
			answers[i] = queryRangeRaw(t, s.cfg.Ports, q, start, end, 30*time.Second)
		}
		split, whole := answers[0], answers[1]
		if split.code != whole.code || split.data != whole.data || split.err != whole.err ||
			!slices.Equal(split.warnings, whole.warnings) || !slices.Equal(split.infos, whole.infos) {
			t.Errorf("%s: split answer differs from the whole query's:\nsplit: %s\nwhole: %s", q, split, whole)
		}
		if whole.code == http.StatusOK && len(whole.data) < 100 {
			t.Errorf("%s: the whole query's answer holds no data to compare: %s", q, whole)
		}
		infos += len(whole.infos)
		if whole.err != "" {
			errs++
		}
	}
	if infos < 2 || errs != 1 {
		t.Errorf("%d infos and %d errors among the answers, want the 2 rate infos and the many-to-many error", infos, errs)
	}
	// The splitting server evaluated parts: its engines for them count them under their own
	// prefixes (the queries with functions over ranges, evaluated on windows, under the
	// windows engines' one), and Prometheus's prometheus_engine_* only counts the queries
	// evaluated whole there (the one with `@ start()` and the many-to-many one, again whole
	// after its parts failed). On the other server the queries on windows are counted by the
	// windows engine, the others by Prometheus's prometheus_engine_*.
	const partPrefix, windowsPrefix, windowPartPrefix = "metricstor_range_query_part_", "metricstor_range_query_windows_", "metricstor_range_query_windows_part_"
	// The queries above with rate, irate, increase, avg_over_time or deriv outside a subquery,
	// and those with count or max of a plain selector.
	const windowed = 13
	wholeOnSplit, parts := evaluations(t, servers[0].cfg.Ports, ""), evaluations(t, servers[0].cfg.Ports, partPrefix)
	windowParts := evaluations(t, servers[0].cfg.Ports, windowPartPrefix)
	wholeOnWhole, partsOnWhole := evaluations(t, servers[1].cfg.Ports, ""), evaluations(t, servers[1].cfg.Ports, partPrefix)
	windowsOnWhole := evaluations(t, servers[1].cfg.Ports, windowsPrefix)
	if wholeOnSplit != 2 || parts+windowParts < 4*(len(queries)-2) || windowParts < 4*windowed {
		t.Errorf("splitting server: %d queries evaluated whole, %d parts and %d on windows; want 2, and at least %d parts of which %d on windows",
			wholeOnSplit, parts, windowParts, 4*(len(queries)-2), 4*windowed)
	}
	if wholeOnWhole != len(queries)-windowed || windowsOnWhole != windowed || partsOnWhole != 0 {
		t.Errorf("other server: %d queries evaluated whole, %d on windows, %d parts; want %d, %d and 0",
			wholeOnWhole, windowsOnWhole, partsOnWhole, len(queries)-windowed, windowed)
	}
}

// evaluations returns how many queries the binary's engine evaluated, from its
// <prefix>prometheus_engine_query_duration_seconds{slice="inner_eval"} on the API's
// self_metrics; 0 when there is no such metric.
func evaluations(t *testing.T, ports harness.Ports, prefix string) int {
	t.Helper()
	name := prefix + "prometheus_engine_query_duration_seconds"
	resp, err := http.Get(ports.PromQLURL() + "/api/v1/status/self_metrics?metric_name_pattern=" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data []struct {
			Name   string
			Metric []struct {
				Label []struct {
					Name, Value string
				}
				Summary struct {
					SampleCount string
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	for _, f := range env.Data {
		if f.Name != name {
			continue
		}
		for _, m := range f.Metric {
			if len(m.Label) == 1 && m.Label[0].Value == "inner_eval" {
				n, err := strconv.Atoi(m.Summary.SampleCount)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	return 0
}

// splitAPIAnswer is a query_range response: status code, the data member as sent, the error,
// and the warnings and infos sorted.
type splitAPIAnswer struct {
	code            int
	data, err       string
	warnings, infos []string
}

func (a splitAPIAnswer) String() string {
	data := a.data
	if len(data) > 300 {
		data = data[:300] + "..."
	}
	return fmt.Sprintf("%d, error %q, warnings %q, infos %q, data %s", a.code, a.err, a.warnings, a.infos, data)
}

func queryRangeRaw(t *testing.T, ports harness.Ports, query string, start, end time.Time, step time.Duration) splitAPIAnswer {
	t.Helper()
	v := url.Values{"query": {query}, "start": {strconv.FormatInt(start.Unix(), 10)}, "end": {strconv.FormatInt(end.Unix(), 10)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	resp, err := http.PostForm(ports.PromQLURL()+"/api/v1/query_range", v)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	var env struct {
		Data     json.RawMessage `json:"data"`
		Error    string          `json:"error"`
		Warnings []string        `json:"warnings"`
		Infos    []string        `json:"infos"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatalf("%s: %d %s: %v", query, resp.StatusCode, body, err)
	}
	slices.Sort(env.Warnings)
	slices.Sort(env.Infos)
	return splitAPIAnswer{code: resp.StatusCode, data: string(env.Data), err: env.Error, warnings: env.Warnings, infos: env.Infos}
}
