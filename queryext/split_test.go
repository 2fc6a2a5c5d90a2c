package queryext

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/demotarget"
)

// loadDemoData appends what the conformance run's reference scrapes: three demo targets (the
// same values at the same second), job="demo", every second over [start, start+span), into app.
func loadDemoData(t testing.TB, app promstorage.AppendableV2, start time.Time, span time.Duration) {
	t.Helper()
	st := labels.NewSymbolTable()
	var buf bytes.Buffer
	for ts := start; ts.Before(start.Add(span)); ts = ts.Add(time.Second) {
		a := app.AppenderV2(context.Background())
		for i := range 3 {
			buf.Reset()
			if err := (demotarget.Target{Seed: 1, Instance: i}).Write(&buf, ts); err != nil {
				t.Fatal(err)
			}
			p := textparse.NewPromParser(buf.Bytes(), st, false)
			instance := fmt.Sprintf("demo.promlabs.com:%d", 10000+i)
			for {
				e, err := p.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if e != textparse.EntrySeries {
					continue
				}
				var lset labels.Labels
				p.Labels(&lset)
				_, _, v := p.Series()
				b := labels.NewBuilder(lset)
				b.Set("job", "demo")
				b.Set("instance", instance)
				if _, err := a.Append(0, b.Labels(), 0, ts.UnixMilli(), v, nil, nil, promstorage.AOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

// newEngine is Prometheus's engine as the API builds it for what it does not split.
func newEngine(cfg *Config, logger *slog.Logger, reg prometheus.Registerer, p parser.Parser) *promql.Engine {
	return newPromEngine(cfg, logger, reg, p, newConcurrencyLimiter(cfg.MaxConcurrency), cfg.MaxSamples)
}

// splitAnswer is what a range query returned, for comparing two engines.
type splitAnswer struct {
	matrix          promql.Matrix
	err             string
	warnings, infos []string
}

func rangeAnswer(t testing.TB, e promql.QueryEngine, q promstorage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (splitAnswer, promql.Query) {
	t.Helper()
	qry, err := e.NewRangeQuery(context.Background(), q, opts, qs, start, end, step)
	if err != nil {
		return splitAnswer{err: "new query: " + err.Error()}, nil
	}
	res := qry.Exec(context.Background())
	var a splitAnswer
	a.warnings, a.infos = res.Warnings.AsStrings(qs, 0, 0)
	slices.Sort(a.warnings)
	slices.Sort(a.infos)
	if res.Err != nil {
		a.err = res.Err.Error()
		return a, qry
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	a.matrix = m
	return a, qry
}

func diffSplitAnswers(got, want splitAnswer) string {
	switch {
	case got.err != want.err:
		return fmt.Sprintf("error %q, want %q", got.err, want.err)
	case !slices.Equal(got.warnings, want.warnings):
		return fmt.Sprintf("warnings %q, want %q", got.warnings, want.warnings)
	case !slices.Equal(got.infos, want.infos):
		return fmt.Sprintf("infos %q, want %q", got.infos, want.infos)
	}
	return matrixDiff(got.matrix, want.matrix, 0)
}

// TestSplitRangeQueriesMatchPrometheus runs every case of the conformance query set (539, the
// failing ones included), the benchmark's queries and a few more that touch the seams, as
// range queries over 20 minutes of the conformance run's demo data in the metricstor store,
// with Prometheus's engine whole and split into 3 and 7 parts, and requires the same answer
// bit for bit: points, errors, warnings and infos.
func TestSplitRangeQueriesMatchPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: it loads 20 minutes of demo data and runs about 1,700 range queries; it runs in `make unit` and `make test`, which do not pass -short")
	}
	queries := conformanceQueries(t,
		// Subqueries, with and without a step, with offsets and a fixed time: their steps are
		// aligned to absolute time, not to a part's start.
		`max_over_time(rate(demo_cpu_usage_seconds_total[1m])[5m:7s])`,
		`avg_over_time(demo_memory_usage_bytes[3m:] offset 1m)`,
		`sum_over_time(demo_num_cpus[2m:13s] @ 1700000500)`,
		`rate(demo_api_request_duration_seconds_count[1m] @ 1700000700)`,
		`histogram_quantile(0.9, rate(demo_api_request_duration_seconds_bucket[1m]))`,
		`timestamp(demo_batch_last_success_timestamp_seconds)`,
		`changes(demo_batch_last_run_timestamp_seconds[10m])`,
		`sum(demo_cpu_usage_seconds_total) by (mode) > on(mode) group_left count(demo_num_cpus)`,
	)

	q, start := demoStore(t)

	cfg := createDefaultConfig().(*Config)
	engine := newEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	defer engine.Close()

	// From 5 minutes in (windows reach back before the first sample of some) to past the end
	// (the last steps see stale or no data), at a step that is not a divisor of the span.
	from, to, step := start.Add(5*time.Minute), start.Add(21*time.Minute), 7*time.Second
	split, withData, runs := 0, 0, 0
	for round, parts := range []int{3, 7} {
		se := &splitEngine{Engine: engine, parts: parts, minSteps: 1, maxSamples: cfg.MaxSamples}
		for i, qs := range queries {
			if raceEnabled && i%2 != round {
				// Under the race detector (make unit) each query is compared once, split in 3
				// or in 7 parts in turn: the same queries and both splittings for half the
				// time; the detector looks at the parts' goroutines, not at more queries.
				continue
			}
			runs++
			want, wantQry := rangeAnswer(t, engine, q, nil, qs, from, to, step)
			got, gotQry := rangeAnswer(t, se, q, nil, qs, from, to, step)
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Errorf("%d parts: %s: %s", parts, qs, diff)
			}
			if sq, ok := gotQry.(*splitQuery); ok && !sq.ranWhole {
				split++
				if len(want.matrix) > 0 {
					withData++
				}
			}
			for _, qry := range []promql.Query{wantQry, gotQry} {
				if qry != nil {
					qry.Close()
				}
			}
		}
	}
	// Most cases are split and answered by their parts, with data: the comparison is about them.
	if 2*split < runs || 2*withData < runs {
		t.Errorf("%d of %d range queries answered by parts, %d with data; want at least half of each", split, runs, withData)
	}
	t.Logf("%d of %d range queries answered by parts, %d of them with data", split, runs, withData)
}

// demoStore is a store holding 20 minutes of the conformance run's demo data from start on,
// closed at the end of the test.
func demoStore(t *testing.T) (q promstorage.Queryable, start time.Time) {
	t.Helper()
	store, closeStore := openBenchStore(t, t.TempDir())
	t.Cleanup(closeStore)
	start = time.UnixMilli(1_700_000_000_000)
	loadDemoData(t, store, start, 20*time.Minute)
	return notReadyQueryable{store}, start
}

// conformanceQueries returns extra, then the queries of the conformance query set, then the
// benchmark's.
func conformanceQueries(t *testing.T, extra ...string) []string {
	t.Helper()
	dir, err := conformance.Dir()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := conformance.LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	queries := slices.Clip(extra)
	for _, c := range cases {
		queries = append(queries, c.Query)
	}
	for _, bq := range benchQueries {
		queries = append(queries, bq.query)
	}
	return queries
}

// splitTestSetup is an hour of demo data in the metricstor store and Prometheus's engine with
// maxSamples over it.
func splitTestSetup(t *testing.T, maxSamples int) (promstorage.Queryable, *promql.Engine, time.Time) {
	t.Helper()
	store, closeStore := openBenchStore(t, t.TempDir())
	t.Cleanup(closeStore)
	start := time.UnixMilli(1_700_000_000_000)
	loadDemoData(t, store, start, 10*time.Minute)
	cfg := createDefaultConfig().(*Config)
	cfg.MaxSamples = maxSamples
	engine := newEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	t.Cleanup(func() { _ = engine.Close() })
	return notReadyQueryable{store}, engine, start
}

// TestSplitLeavesWhole checks which range queries stay whole: `@ start()` and `@ end()` (their
// time is the query's start or end, not a part's), per-step statistics, too few steps for two
// parts, parallelism 1; and that a bad query fails as Prometheus's engine fails it.
func TestSplitLeavesWhole(t *testing.T) {
	q, engine, start := splitTestSetup(t, 50_000_000)
	from, to, step := start.Add(time.Minute), start.Add(9*time.Minute), 2*time.Second // 241 steps
	se := &splitEngine{Engine: engine, parts: 2, minSteps: 100, maxSamples: 50_000_000}
	for _, c := range []struct {
		name  string
		e     *splitEngine
		opts  promql.QueryOpts
		query string
		to    time.Time
		split bool
	}{
		{name: "plain", e: se, query: `rate(demo_cpu_usage_seconds_total[1m])`, to: to, split: true},
		{name: "@ start()", e: se, query: `rate(demo_cpu_usage_seconds_total[1m] @ start())`, to: to},
		{name: "@ end() in a subquery", e: se, query: `max_over_time(demo_num_cpus[5m:10s] @ end())`, to: to},
		{name: "@ a time", e: se, query: `demo_num_cpus @ 1700000100`, to: to, split: true},
		{name: "per-step stats", e: se, opts: promql.NewPrometheusQueryOpts(true, 0, nil), query: `demo_num_cpus`, to: to},
		{name: "199 steps", e: se, query: `demo_num_cpus`, to: from.Add(198 * step)},
		{name: "200 steps", e: se, query: `demo_num_cpus`, to: from.Add(199 * step), split: true},
		{name: "parallelism 1", e: &splitEngine{Engine: engine, parts: 1, minSteps: 1}, query: `demo_num_cpus`, to: to},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, wantQry := rangeAnswer(t, engine, q, c.opts, c.query, from, c.to, step)
			defer wantQry.Close()
			got, gotQry := rangeAnswer(t, c.e, q, c.opts, c.query, from, c.to, step)
			defer gotQry.Close()
			if _, split := gotQry.(*splitQuery); split != c.split {
				t.Errorf("split: %v, want %v", split, c.split)
			}
			if len(want.matrix) == 0 || want.err != "" {
				t.Fatalf("no answer to compare: %+v", want)
			}
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Error(diff)
			}
		})
	}
	// A query the engine refuses fails with the engine's error, before any part exists.
	for _, qs := range []string{`rate(demo_num_cpus)`, `demo_num_cpus[5m]`, `sum(`} {
		_, wantErr := engine.NewRangeQuery(context.Background(), q, nil, qs, from, to, step)
		_, gotErr := se.NewRangeQuery(context.Background(), q, nil, qs, from, to, step)
		if wantErr == nil || gotErr == nil || gotErr.Error() != wantErr.Error() {
			t.Errorf("%s: error %v, want %v", qs, gotErr, wantErr)
		}
	}
}

// TestSplitMaxSamples checks that a split query fails on max_samples exactly when the whole
// query does, with Prometheus's error: at one sample under the whole's peak the parts each stay
// under the limit, their peaks add up to more, and the whole runs again and fails. It also
// checks what that rests on: the parts' peaks add up to at least the whole's.
func TestSplitMaxSamples(t *testing.T) {
	q, big, start := splitTestSetup(t, 50_000_000)
	from, to, step := start.Add(time.Minute), start.Add(9*time.Minute), time.Second
	for _, qs := range []string{
		`sum by (mode) (demo_cpu_usage_seconds_total)`,
		`rate(demo_cpu_usage_seconds_total[1m])`,
		`max_over_time(rate(demo_cpu_usage_seconds_total[1m])[5m:7s])`,
		`count_over_time(demo_num_cpus[5m])`,
		`topk(2, demo_memory_usage_bytes) + on(instance) group_left demo_num_cpus`,
	} {
		qry, err := big.NewRangeQuery(context.Background(), q, nil, qs, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		if res := qry.Exec(context.Background()); res.Err != nil {
			t.Fatal(res.Err)
		}
		peak := qry.Stats().Samples.PeakSamples
		qry.Close()
		full, fullQry := rangeAnswer(t, big, q, nil, qs, from, to, step)
		sq, err := (&splitEngine{Engine: big, parts: 4, minSteps: 1, maxSamples: 50_000_000}).NewRangeQuery(context.Background(), q, nil, qs, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		if res := sq.Exec(context.Background()); res.Err != nil {
			t.Fatal(res.Err)
		}
		if sum := sq.Stats().Samples.PeakSamples; sum < peak {
			t.Errorf("%s: the parts' peaks add up to %d, less than the whole's %d", qs, sum, peak)
		}
		sq.Close()

		for _, limit := range []int{peak - 1, peak, peak * 2, peak * 4} {
			cfg := createDefaultConfig().(*Config)
			cfg.MaxSamples = limit
			cfg.RangeQueryParallelism = 4
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			engine := newEngine(cfg, logger, prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
			// The parts on the whole's engine (limit for all of them together), and as served:
			// each part held to a quarter of the limit.
			_, served := newEngines(cfg, logger, prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
			for _, se := range []promql.QueryEngine{&splitEngine{Engine: engine, parts: 4, minSteps: 1, maxSamples: limit}, served} {
				want, wantQry := rangeAnswer(t, engine, q, nil, qs, from, to, step)
				got, gotQry := rangeAnswer(t, se, q, nil, qs, from, to, step)
				if (want.err != "") != (limit < peak) {
					t.Errorf("%s: limit %d, peak %d: whole query's error %q", qs, limit, peak, want.err)
				}
				if wq, ok := gotQry.(*windowQuery); ok {
					// Evaluated on windows (windows.go), which hold the calls' answers, not
					// their windows: the answer is the engine's without the limit.
					if diff := diffSplitAnswers(got, full); diff != "" {
						t.Errorf("%s: on windows, limit %d, peak %d: %s", qs, limit, peak, diff)
					}
					if wq.ran != wq.windows {
						t.Errorf("%s: limit %d: not answered on windows", qs, limit)
					}
					wantQry.Close()
					gotQry.Close()
					continue
				}
				if diff := diffSplitAnswers(got, want); diff != "" {
					t.Errorf("%s: limit %d, peak %d: %s", qs, limit, peak, diff)
				}
				sq, ok := gotQry.(*splitQuery)
				if !ok {
					t.Fatalf("%s: not split: %T", qs, gotQry)
				}
				if limit < peak && !sq.ranWhole {
					t.Errorf("%s: limit %d, peak %d: the parts answered", qs, limit, peak)
				}
				if !sq.ranWhole && sq.Stats().Samples.PeakSamples > limit {
					t.Errorf("%s: limit %d: the parts answered holding %d samples", qs, limit, sq.Stats().Samples.PeakSamples)
				}
				if limit == peak*4 && se == served && sq.ranWhole {
					t.Errorf("%s: limit %d, peak %d: a quarter each is enough for the parts, yet the whole ran", qs, limit, peak)
				}
				wantQry.Close()
				gotQry.Close()
			}
			_ = engine.Close()
		}
		fullQry.Close()
	}
}

// TestSplitCanceled checks that a split query whose context is done fails as the whole query
// does (errorType canceled or timeout in the API), without running it again.
func TestSplitCanceled(t *testing.T) {
	const qs = `rate(demo_cpu_usage_seconds_total[1m])`
	q, engine, start := splitTestSetup(t, 50_000_000)
	from, to, step := start.Add(time.Minute), start.Add(9*time.Minute), time.Second
	se := &splitEngine{Engine: engine, parts: 3, minSteps: 1, maxSamples: 50_000_000}
	for _, c := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
	}{
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var errs [2]error
			for i, e := range []promql.QueryEngine{engine, se} {
				qry, err := e.NewRangeQuery(context.Background(), q, nil, qs, from, to, step)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := c.ctx()
				errs[i] = qry.Exec(ctx).Err
				cancel()
				if sq, ok := qry.(*splitQuery); i == 1 && (!ok || sq.ranWhole) {
					t.Errorf("split query: %T, ran whole", qry)
				}
				qry.Close()
			}
			if errs[0] == nil || errs[1] == nil || errs[0].Error() != errs[1].Error() {
				t.Errorf("error %v, want %v", errs[1], errs[0])
			}
		})
	}
}

// TestSplitPromQLScripts runs Prometheus's own PromQL test scripts (promql/promqltest, every
// `eval range` with its expected points, warnings, infos and failures) through the split engine,
// every range query of 3 steps or more in 3 parts, on the scripts' own test storage and engine
// settings: the scripts' expectations are Prometheus's answers.
func TestSplitPromQLScripts(t *testing.T) {
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	se := &countingSplitEngine{splitEngine: &splitEngine{Engine: engine, parts: 3, minSteps: 1,
		maxSamples: promqltest.DefaultMaxSamplesPerQuery, parser: parser.NewParser(promqltest.TestParserOpts)}}
	promqltest.RunBuiltinTests(t, se)
	// The scripts' range queries are short: those of 4 steps or more are split.
	if se.split < 100 {
		t.Errorf("%d of %d range queries split, want at least 100", se.split, se.ranges)
	}
	t.Logf("%d of %d range queries split", se.split, se.ranges)
}

// countingSplitEngine counts the range queries it is given and those it splits.
type countingSplitEngine struct {
	*splitEngine
	ranges, split int
}

func (e *countingSplitEngine) NewRangeQuery(ctx context.Context, q promstorage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	qry, err := e.splitEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	e.ranges++
	if _, ok := qry.(*splitQuery); ok {
		e.split++
	}
	return qry, err
}
