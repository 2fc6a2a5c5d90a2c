package queryext

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	mstorage "github.com/metricstor/metricstor/storage"
	"github.com/metricstor/metricstor/testbed/loadgen"
	"github.com/metricstor/metricstor/testbed/serverbench"
)

// The query benchmark's dataset: issue 7's "24 h of 2,000 realistic series", 15 s apart, plus
// one classic histogram per host so that histogram_quantile has something to read.
const (
	benchHosts    = 20 // × loadgen.SeriesPerHost = 2,000 node-exporter-like series
	benchInterval = 15 * time.Second
	benchStep     = time.Minute
	// benchStart is minute-aligned so that steps fall on whole minutes, as a dashboard asks.
	benchStart = int64(1_699_999_980_000)
)

// benchBuckets are the upper bounds of the per-host request-duration histogram.
var benchBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, math.Inf(1)}

// benchQueries are the range queries timed over the whole span: the shapes a node dashboard
// sends (rates, aggregations, quantiles, top-k, relabelling, a select of every series).
var benchQueries = []struct{ name, query string }{
	{"rate", `rate(node_cpu_seconds_total[5m])`},
	{"irate", `irate(node_network_receive_bytes_total[5m])`},
	{"sum_by_rate", `sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))`},
	{"avg_over_time", `avg_over_time(node_hwmon_temp_celsius[10m])`},
	{"histogram_quantile", `histogram_quantile(0.9, sum by (le, instance) (rate(http_request_duration_seconds_bucket[5m])))`},
	{"topk", `topk(5, rate(node_network_transmit_bytes_total[5m]))`},
	{"count_by", `count by (mode) (node_cpu_seconds_total)`},
	{"label_replace", `label_replace(rate(node_disk_read_bytes_total[5m]), "host", "$1", "instance", "(.*):9100")`},
	{"ratio", `1 - node_filesystem_avail_bytes / node_filesystem_size_bytes`},
	{"increase_1h", `sum by (device) (increase(node_disk_writes_completed_total[1h]))`},
	{"count_all", `count({job="loadgen"})`},
}

// benchSeriesLabels returns every series of the dataset with a function giving its value at round r:
// the node-exporter-like series, and the histograms when withHistograms.
func benchSeriesLabels(withHistograms bool) ([]labels.Labels, []func(r int) float64) {
	var ls []labels.Labels
	var vals []func(int) float64
	for id := range benchHosts * loadgen.SeriesPerHost {
		b := labels.NewScratchBuilder(6)
		for _, l := range loadgen.Labels(id) {
			b.Add(l.Name, l.Value)
		}
		ls = append(ls, b.Labels())
		vals = append(vals, func(r int) float64 { return loadgen.Value(id, r) })
	}
	if !withHistograms {
		return ls, vals
	}
	for h := range benchHosts {
		instance := fmt.Sprintf("host-%05d:9100", h)
		// Observations per round per host, spread over the buckets by a fixed shape that
		// differs a little between hosts; cumulative, so every bucket is a counter.
		for i, le := range benchBuckets {
			ls = append(ls, labels.FromStrings(
				"__name__", "http_request_duration_seconds_bucket",
				"instance", instance, "job", "loadgen", "le", strconv.FormatFloat(le, 'g', -1, 64)))
			share := math.Min(1, float64(i+1)/float64(len(benchBuckets)-2+h%3))
			vals = append(vals, func(r int) float64 { return math.Floor(float64(r) * (10 + float64(h)) * share) })
		}
	}
	return ls, vals
}

// loadBenchData appends rounds of one sample per series in batches of 2,000, as remote write
// batches arrive.
func loadBenchData(b *testing.B, app promstorage.AppendableV2, rounds int, withHistograms bool) int {
	ls, vals := benchSeriesLabels(withHistograms)
	refs := make([]promstorage.SeriesRef, len(ls))
	a := app.AppenderV2(context.Background())
	n := 0
	for r := range rounds {
		ts := benchStart + int64(r)*benchInterval.Milliseconds()
		for i := range ls {
			ref, err := a.Append(refs[i], ls[i], 0, ts, vals[i](r), nil, nil, promstorage.AOptions{})
			if err != nil {
				b.Fatal(err)
			}
			refs[i] = ref
			if n++; n%2000 == 0 {
				if err := a.Commit(); err != nil {
					b.Fatal(err)
				}
				a = app.AppenderV2(context.Background())
			}
		}
	}
	if err := a.Commit(); err != nil {
		b.Fatal(err)
	}
	return n
}

// openBenchStore starts the metricstor storage extension on dir through its public API.
func openBenchStore(b testing.TB, dir string) (mstorage.Store, func()) {
	f := mstorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*mstorage.Config)
	cfg.Directory = dir
	cfg.Retention = 0
	set := extension.Settings{
		ID:                component.NewID(f.Type()),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
	ext, err := f.Create(context.Background(), set, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		b.Fatal(err)
	}
	return ext.(mstorage.Store), func() {
		if err := ext.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
	}
}

// benchHours is the span of the dataset: 24 h unless METRICSTOR_QUERYBENCH_HOURS says otherwise
// (a shorter span loads faster when iterating on a change).
func benchHours(b *testing.B) int {
	h := 24
	if s := os.Getenv("METRICSTOR_QUERYBENCH_HOURS"); s != "" {
		var err error
		if h, err = strconv.Atoi(s); err != nil || h < 1 {
			b.Fatalf("METRICSTOR_QUERYBENCH_HOURS=%q: want a positive number of hours", s)
		}
	}
	return h
}

// BenchmarkRangeQueries loads the dataset into the metricstor store (through the storage
// extension, closed and reopened so that the data is read from disk) and into Prometheus's own
// TSDB (compacted into a block), then times each query of benchQueries over the whole span with
// Prometheus's engine whole and split as the extension serves it, on both stores in the same run.
// Before timing, each query's answer from the metricstor store is checked equal to the one from
// Prometheus's TSDB, and the split engine's to the whole engine's.
//
// It measures, never asserts a time: compare the ratios within one run. The load takes about a
// minute for 24 h; run with -benchtime Nx and -count 1, e.g.
//
//	go test -run '^$' -bench BenchmarkRangeQueries -benchtime 5x ./queryext/
func BenchmarkRangeQueries(b *testing.B) {
	runBenchQueries(b, benchQueries, true, true, 0)
}

// BenchmarkDayQueries times the 11 range queries of the server benchmark (testbed/serverbench,
// make bench-server) in process: the same 2,000 series over a day (no histograms), step 60 s,
// on the metricstor store only, with Prometheus's engine whole and split as the extension serves
// it, each answer checked against the one from Prometheus's TSDB first
// as the server benchmark checks it (relative difference 1e-6: the store gives series in ref
// order, as Prometheus's head does, the block in label order, so sums and averages over series
// add in another order). It separates the engine and the store from the HTTP API and its JSON, e.g.
//
//	go test -run '^$' -bench BenchmarkDayQueries -benchtime 5x -cpuprofile cpu.out ./queryext/
func BenchmarkDayQueries(b *testing.B) {
	qs := make([]struct{ name, query string }, len(serverbench.DayQueries))
	for i, q := range serverbench.DayQueries {
		qs[i].name, qs[i].query = fmt.Sprintf("q%d", i+1), q
	}
	runBenchQueries(b, qs, false, false, 1e-6)
}

// runBenchQueries loads the dataset (with the histograms when withHistograms) into both stores,
// checks every query's answer from the metricstor store against Prometheus's TSDB (floats within
// relTol, 0: bit for bit) and the split engine's against the whole engine's (bit for bit), and
// times each with both engines on the metricstor store, and on Prometheus's TSDB too when
// bothStores.
func runBenchQueries(b *testing.B, queries []struct{ name, query string }, withHistograms, bothStores bool, relTol float64) {
	hours := benchHours(b)
	rounds := int(time.Duration(hours) * time.Hour / benchInterval)
	end := benchStart + int64(rounds-1)*benchInterval.Milliseconds()

	dir := b.TempDir()
	store, closeStore := openBenchStore(b, dir)
	loadStart := time.Now()
	n := loadBenchData(b, store, rounds, withHistograms)
	closeStore()
	b.Logf("metricstor: loaded %d samples in %s", n, time.Since(loadStart).Round(time.Millisecond))
	store, closeStore = openBenchStore(b, dir)
	defer closeStore()

	opts := promtsdb.DefaultOptions()
	opts.RetentionDuration = 0
	promDB, err := promtsdb.Open(b.TempDir(), nil, nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer promDB.Close()
	loadBenchData(b, promDB, rounds, withHistograms)
	if err := promDB.CompactHead(promtsdb.NewRangeHead(promDB.Head(), benchStart, end)); err != nil {
		b.Fatal(err)
	}
	// The head still holds what went into the block; a query would read both and merge them.
	if err := promDB.Head().Truncate(end + 1); err != nil {
		b.Fatal(err)
	}

	cfg := createDefaultConfig().(*Config)
	engine, served := newEngines(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	defer engine.Close()
	// Both engines in the same run: Prometheus's evaluating each query whole, and the one the
	// API serves, which splits a long range query into range_query_parallelism parts
	// (default: GOMAXPROCS).
	engines := []struct {
		name string
		e    promql.QueryEngine
	}{{"whole", engine}, {"split", served}}
	start, stop := time.UnixMilli(benchStart), time.UnixMilli(end)
	// run returns the answer and the query to Close once the answer has been read: Close hands
	// the answer's points back to the engine's pools.
	run := func(b testing.TB, e promql.QueryEngine, q promstorage.Queryable, qs string) (promql.Matrix, promql.Query) {
		qry, err := e.NewRangeQuery(context.Background(), q, nil, qs, start, stop, benchStep)
		if err != nil {
			b.Fatal(err)
		}
		res := qry.Exec(context.Background())
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		m, err := res.Matrix()
		if err != nil {
			b.Fatal(err)
		}
		return m, qry
	}

	// The API as the binary serves it (the served engine, Prometheus's web/api/v1 and its JSON)
	// on loopback: what the server benchmark times, minus the collector's HTTP middleware.
	var ready atomic.Bool
	ready.Store(true)
	api := newAPIHandler(store, apiSettings{cfg: cfg, logger: slog.New(slog.DiscardHandler), version: "bench", ready: &ready})
	defer api.engine.Close()
	srv := httptest.NewServer(api.handler)
	defer srv.Close()
	form := func(qs string) url.Values {
		return url.Values{"query": {qs}, "start": {strconv.FormatFloat(float64(benchStart)/1e3, 'f', -1, 64)},
			"end": {strconv.FormatFloat(float64(end)/1e3, 'f', -1, 64)}, "step": {"60"}}
	}
	viaAPI := func(b testing.TB, qs string) {
		resp, err := http.PostForm(srv.URL+apiPrefix+"/query_range", form(qs))
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"resultType":"matrix"`)) {
			b.Fatalf("%s via the API: %s %v: %.200s", qs, resp.Status, err, body)
		}
	}

	stores := []struct {
		name string
		q    promstorage.Queryable
	}{{"metricstor", notReadyQueryable{store}}, {"prometheus_tsdb", promDB}}
	if !bothStores {
		stores = stores[:1]
	}
	for _, bq := range queries {
		want, wantQry := run(b, engine, promDB, bq.query)
		got, gotQry := run(b, engine, stores[0].q, bq.query)
		if len(want) == 0 {
			b.Fatalf("%s: no series in the answer", bq.name)
		}
		if diff := matrixDiff(got, want, relTol); diff != "" {
			b.Fatalf("%s: metricstor's answer differs from Prometheus's TSDB's: %s", bq.name, diff)
		}
		// The split engine's answer is the whole engine's on the same store, bit for bit.
		for _, s := range stores {
			whole, wholeQry := run(b, engine, s.q, bq.query)
			split, splitQry := run(b, engines[1].e, s.q, bq.query)
			// A span of METRICSTOR_QUERYBENCH_HOURS too short for two parts is not split.
			splits := cfg.rangeQueryParts() > 1 && stop.Sub(start)/benchStep >= 2*minStepsPerPart
			if _, ok := answeredBy(splitQry).(*splitQuery); !ok && splits {
				b.Fatalf("%s: the served engine did not split the query", bq.name)
			}
			if diff := matrixDiff(split, whole, 0); diff != "" {
				b.Fatalf("%s on %s: the split engine's answer differs from the whole engine's: %s", bq.name, s.name, diff)
			}
			wholeQry.Close()
			splitQry.Close()
		}
		wantQry.Close()
		gotQry.Close()
		for _, s := range stores {
			for _, e := range engines {
				b.Run(bq.name+"/"+s.name+"/"+e.name, func(b *testing.B) {
					cpu0 := processCPU(b)
					// Labelled so that a CPU profile of the whole run splits by query and engine
					// (go tool pprof -tagfocus query=q1), leaving out the load.
					pprof.Do(context.Background(), pprof.Labels("query", bq.name, "store", s.name, "engine", e.name), func(context.Context) {
						for range b.N {
							_, qry := run(b, e.e, s.q, bq.query)
							qry.Close()
						}
					})
					// The process's CPU time per query besides the wall time: the split engine
					// spends more of it (seams read twice, the answer joined) to wait less.
					b.ReportMetric(float64(processCPU(b)-cpu0)/1e6/float64(b.N), "cpu-ms/op")
				})
			}
		}
		b.Run(bq.name+"/metricstor/api", func(b *testing.B) {
			cpu0 := processCPU(b)
			pprof.Do(context.Background(), pprof.Labels("query", bq.name, "store", "metricstor", "engine", "api"), func(context.Context) {
				for range b.N {
					viaAPI(b, bq.query)
				}
			})
			b.ReportMetric(float64(processCPU(b)-cpu0)/1e6/float64(b.N), "cpu-ms/op")
		})
	}
}

// matrixDiff describes the first difference between two range-query answers, or returns "".
// With relTol 0, floats must be equal bit for bit (NaN equals NaN only when the bits agree, so a
// stale NaN differs from a computed one); otherwise within relTol of each other, NaN only to NaN.
func matrixDiff(got, want promql.Matrix, relTol float64) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d series, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if !labels.Equal(g.Metric, w.Metric) {
			return fmt.Sprintf("series %d is %s, want %s", i, g.Metric, w.Metric)
		}
		if len(g.Floats) != len(w.Floats) || len(g.Histograms) != len(w.Histograms) {
			return fmt.Sprintf("%s: %d floats and %d histograms, want %d and %d",
				w.Metric, len(g.Floats), len(g.Histograms), len(w.Floats), len(w.Histograms))
		}
		for j := range w.Floats {
			if g.Floats[j].T != w.Floats[j].T || !floatsAgree(g.Floats[j].F, w.Floats[j].F, relTol) {
				return fmt.Sprintf("%s: point %d is %v, want %v", w.Metric, j, g.Floats[j], w.Floats[j])
			}
		}
		for j := range w.Histograms {
			if g.Histograms[j].T != w.Histograms[j].T || !g.Histograms[j].H.Equals(w.Histograms[j].H) {
				return fmt.Sprintf("%s: histogram point %d is %v, want %v", w.Metric, j, g.Histograms[j], w.Histograms[j])
			}
		}
	}
	return ""
}

// floatsAgree compares two points' values for matrixDiff. With relTol 0 they must be the same
// bits, but for the payload of a NaN: the API writes every NaN as "NaN", PromQL has no function
// that reads a payload, and arithmetic never makes the one payload that means something (a
// stale marker's), while which of two NaN operands an addition hands on depends on the order
// the compiler gives them (Prometheus's functions are compiled apart, windowcalc.go's in line).
func floatsAgree(a, b, relTol float64) bool {
	switch {
	case relTol == 0:
		return math.Float64bits(a) == math.Float64bits(b) ||
			math.IsNaN(a) && math.IsNaN(b) && !value.IsStaleNaN(a) && !value.IsStaleNaN(b)
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b: // infinities, zeros
		return true
	default:
		return math.Abs(a-b) <= relTol*math.Max(math.Abs(a), math.Abs(b))
	}
}

// processCPU is the CPU time (user and system) the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
