package queryext

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	mstorage "github.com/metricstor/metricstor/storage"
	"github.com/metricstor/metricstor/testbed/loadgen"
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

// benchSeriesLabels returns every series of the dataset with a function giving its value at round r.
func benchSeriesLabels() ([]labels.Labels, []func(r int) float64) {
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
func loadBenchData(b *testing.B, app promstorage.AppendableV2, rounds int) int {
	ls, vals := benchSeriesLabels()
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
func openBenchStore(b *testing.B, dir string) (mstorage.Store, func()) {
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
// the engine the extension serves, on both stores in the same run. Before timing, each query's
// answer from the metricstor store is checked equal to the one from Prometheus's TSDB.
//
// It measures, never asserts a time: compare the ratios within one run. The load takes about a
// minute for 24 h; run with -benchtime Nx and -count 1, e.g.
//
//	go test -run '^$' -bench BenchmarkRangeQueries -benchtime 5x ./queryext/
func BenchmarkRangeQueries(b *testing.B) {
	hours := benchHours(b)
	rounds := int(time.Duration(hours) * time.Hour / benchInterval)
	end := benchStart + int64(rounds-1)*benchInterval.Milliseconds()

	dir := b.TempDir()
	store, closeStore := openBenchStore(b, dir)
	loadStart := time.Now()
	n := loadBenchData(b, store, rounds)
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
	loadBenchData(b, promDB, rounds)
	if err := promDB.CompactHead(promtsdb.NewRangeHead(promDB.Head(), benchStart, end)); err != nil {
		b.Fatal(err)
	}
	// The head still holds what went into the block; a query would read both and merge them.
	if err := promDB.Head().Truncate(end + 1); err != nil {
		b.Fatal(err)
	}

	cfg := createDefaultConfig().(*Config)
	engine := newEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	defer engine.Close()
	start, stop := time.UnixMilli(benchStart), time.UnixMilli(end)
	// run returns the answer and the query to Close once the answer has been read: Close hands
	// the answer's points back to the engine's pools.
	run := func(b testing.TB, q promstorage.Queryable, qs string) (promql.Matrix, promql.Query) {
		qry, err := engine.NewRangeQuery(context.Background(), q, nil, qs, start, stop, benchStep)
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

	stores := []struct {
		name string
		q    promstorage.Queryable
	}{{"metricstor", notReadyQueryable{store}}, {"prometheus_tsdb", promDB}}
	for _, bq := range benchQueries {
		want, wantQry := run(b, promDB, bq.query)
		got, gotQry := run(b, stores[0].q, bq.query)
		if len(want) == 0 {
			b.Fatalf("%s: no series in the answer", bq.name)
		}
		if diff := matrixDiff(got, want); diff != "" {
			b.Fatalf("%s: metricstor's answer differs from Prometheus's TSDB's: %s", bq.name, diff)
		}
		wantQry.Close()
		gotQry.Close()
		for _, s := range stores {
			b.Run(bq.name+"/"+s.name, func(b *testing.B) {
				for range b.N {
					_, qry := run(b, s.q, bq.query)
					qry.Close()
				}
			})
		}
	}
}

// matrixDiff describes the first difference between two range-query answers, or returns "".
// Floats must be equal bit for bit (NaN equals NaN only when the bits agree, so a stale NaN
// differs from a computed one), as conformance compares them.
func matrixDiff(got, want promql.Matrix) string {
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
			if g.Floats[j].T != w.Floats[j].T || math.Float64bits(g.Floats[j].F) != math.Float64bits(w.Floats[j].F) {
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
