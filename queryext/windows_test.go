package queryext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"

	mstorage "github.com/metricstor/metricstor/storage"
)

// loadWindowData appends two hours of series that exercise the functions over ranges: counters
// that reset, scraped every 15 s with jitter (one on time), gaps and a stale marker; gauges with NaN and
// infinities; a counter whose labels equal another's but for the name; a gauge named like no
// counter; a native histogram with resets and a stale marker; and a series of floats, then
// histograms, then floats.
func loadWindowData(t testing.TB, app promstorage.AppendableV2, start time.Time) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	a := app.AppenderV2(context.Background())
	add := func(lset labels.Labels, ts int64, v float64) {
		if _, err := a.Append(0, lset, 0, ts, v, nil, nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for inst := range 6 {
		in := fmt.Sprint(inst)
		reqs := labels.FromStrings("__name__", "wt_requests_total", "job", "wt", "inst", in)
		other := labels.FromStrings("__name__", "wt_other_total", "job", "wt", "inst", in)
		temp := labels.FromStrings("__name__", "wt_temp", "job", "wt", "inst", in)
		var c float64
		for i := range 480 {
			ts := start.UnixMilli() + int64(i)*15_000 + rng.Int64N(3_000)
			if inst == 4 {
				ts = start.UnixMilli() + int64(i)*15_000 // scraped on time
			}
			if inst == 2 && i >= 200 && i < 220 {
				continue // a gap of five minutes
			}
			if inst == 3 && i == 300 {
				add(reqs, ts, math.Float64frombits(value.StaleNaN))
				continue
			}
			c += float64(rng.IntN(100))
			if rng.IntN(40) == 0 {
				c = float64(rng.IntN(5)) // a reset
			}
			add(reqs, ts, c)
			add(other, ts, 2*c)
			g := 20 + 10*rng.Float64()
			switch rng.IntN(60) {
			case 0:
				g = math.NaN()
			case 1:
				g = math.Inf(1)
			}
			add(temp, ts, g)
		}
	}
	hist := labels.FromStrings("__name__", "wt_hist", "job", "wt")
	mixed := labels.FromStrings("__name__", "wt_mixed", "job", "wt")
	for i := range 480 {
		ts := start.UnixMilli() + int64(i)*15_000
		h := tsdbutil.GenerateTestHistogram(int64(i % 100)) // a reset every 25 minutes
		if i == 300 {
			h.Sum = math.Float64frombits(value.StaleNaN)
		}
		if _, err := a.Append(0, hist, 0, ts, 0, h, nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		// A series whose samples are floats for a while, then histograms, then floats.
		if i < 160 || i >= 320 {
			add(mixed, ts, float64(i))
		} else if _, err := a.Append(0, mixed, 0, ts, 0, tsdbutil.GenerateTestHistogram(int64(i)), nil, promstorage.AOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

// windowTestStore is a store holding loadWindowData's series from start on.
func windowTestStore(t *testing.T) (q promstorage.Queryable, start time.Time) {
	t.Helper()
	store, closeStore := openBenchStore(t, t.TempDir())
	t.Cleanup(closeStore)
	start = time.UnixMilli(1_700_000_000_000)
	loadWindowData(t, store, start)
	return notReadyQueryable{store}, start
}

// TestWindowsMatchPrometheus runs every function evaluated on windows over counters with
// resets, gaps and a stale marker and over gauges with NaN and infinities, with ranges shorter
// and longer than the step, offsets, in aggregations, binary operators and other functions, at
// steps of 15 s to 97 s, whole and in 3 parts, on the windows engines and on Prometheus's engine
// as it is, and requires the same answers bit for bit (points, errors, warnings, infos). It
// requires that the queries with such calls were answered on windows, and that the ones whose
// answer would not be the engine's there (native histograms, two series equal but for the
// name) were answered by Prometheus's engine.
func TestWindowsMatchPrometheus(t *testing.T) {
	q, start := windowTestStore(t)

	cfg, engine, windows := windowEngines(t)

	var queries, either []string
	// The functions of one argument (those with a number too are further down).
	funcs := slices.Sorted(func(yield func(string) bool) {
		for f := range windowFuncs {
			if f != "quantile_over_time" && f != "predict_linear" && !yield(f) {
				return
			}
		}
	})
	for _, f := range funcs {
		for _, sel := range []string{"wt_requests_total", `wt_temp{inst!="5"}`} {
			for _, r := range []string{"1m", "5m", "150s"} {
				for _, off := range []string{"", " offset 2m", " offset -1m"} {
					call := fmt.Sprintf("%s(%s[%s]%s)", f, sel, r, off)
					queries = append(queries, call)
					if r == "5m" {
						queries = append(queries, "sum by (inst) ("+call+")")
						if sel == "wt_requests_total" {
							queries = append(queries, "avg("+call+")")
						} else {
							// Where an infinity makes the sum overflow, the average is the
							// engine's (an incremental mean from there).
							either = append(either, "avg("+call+")")
						}
					}
				}
			}
		}
	}
	onWindows := len(queries)
	queries = append(queries,
		`sum(rate(wt_requests_total[5m])) / sum(rate(wt_requests_total[5m] offset 1m))`,
		`abs(deriv(wt_temp[5m]))`, `-rate(wt_requests_total[2m])`, `rate(wt_requests_total[5m]) > 5`,
		`topk(2, rate(wt_requests_total[5m]))`, `count_over_time(wt_temp[2m]) == 8`,
		`label_replace(rate(wt_requests_total[5m]), "x", "$1", "inst", "(.*)")`,
		`sort_desc(rate(wt_requests_total[5m]))`, `quantile(0.9, rate(wt_requests_total[5m]))`,
		`rate(wt_requests_total[5m]) * on(inst) group_left wt_temp`,
		`rate(wt_temp[5m])`, `increase(wt_temp[5m] offset 30s)`, // infos: not a counter's name
		`rate(wt_requests_total{inst="2"}[30s])`, // the gap: steps without an answer
		// A number beside the range.
		`quantile_over_time(0.9, wt_temp[5m])`, `quantile_over_time(0.5, wt_requests_total[150s] offset 1m)`,
		`quantile_over_time(1.5, wt_temp[5m])`, `quantile_over_time(-0.5, wt_temp[2m])`, // a warning each
		`quantile_over_time(NaN, wt_temp[5m])`, `sum by (inst) (quantile_over_time(0.25, wt_temp[1m]))`,
		`predict_linear(wt_temp[10m], 600)`, `predict_linear(wt_requests_total[5m] offset -1m, -30)`,
		`max(predict_linear(wt_requests_total[150s], 3600))`,
		// Aggregations beside the windows, of calls and of plain selectors (windowagg.go).
		`sum without (inst) (rate(wt_requests_total[5m]))`, `max by (job) (irate(wt_requests_total[5m]))`,
		`count(changes(wt_temp[5m]))`, `group(rate(wt_requests_total[5m]))`, `min by (inst) (deriv(wt_temp[5m]))`,
		`sum by (__name__, inst) (rate(wt_requests_total[5m]))`, `count by (nothing) (resets(wt_requests_total[2m]))`,
		`sum((rate(wt_requests_total[5m])))`, `avg without () (increase(wt_requests_total[5m] offset 1m))`,
		`count(wt_requests_total)`, `sum by (inst) (wt_temp)`, `max without (inst) (wt_temp)`, `min(wt_temp)`,
		`group by (job) (wt_requests_total)`, `avg(wt_requests_total)`, `sum(wt_requests_total{inst="3"})`,
		`count without () ({__name__=~"wt_(requests|other)_total"})`, `sum by (__name__) ({__name__=~"wt_(requests|other)_total"})`,
		`count by (nothing) (wt_temp)`, `sum((wt_temp))`, `max(wt_requests_total{inst="2"})`,
		`sum(rate(wt_requests_total[5m])) / count(wt_requests_total)`, `max(count by (inst) (wt_temp))`,
		`topk(1, sum by (inst) (wt_requests_total))`, `-avg by (inst) (wt_requests_total)`,
		`quantile(0.5, wt_temp)`, `quantile by (inst) (0.25, rate(wt_requests_total[5m]))`, `quantile(0, wt_temp)`,
		`quantile(1, wt_requests_total)`, `quantile without (inst) ((0.75), deriv(wt_temp[5m]))`,
		`quantile(NaN, rate(wt_requests_total[5m]))`, `quantile(-1, rate(wt_requests_total[5m]))`, // the engine's, with its warning
	)
	onWindowsToo := len(queries)
	queries = append(queries, either...)
	answeredEither := len(queries)
	queries = append(queries,
		// Answered by Prometheus's engine after the windows could not: names dropped onto
		// equal labels; native histograms, alone and after floats in the same series.
		`rate({__name__=~"wt_(requests|other)_total"}[5m])`,
		`rate(wt_hist[5m])`, `histogram_quantile(0.9, rate(wt_hist[5m]))`, `increase(wt_hist[2m] offset 1m)`,
		`sum_over_time(wt_hist[5m])`, `avg_over_time(wt_hist[3m])`, `max_over_time(wt_hist[5m])`,
		`deriv(wt_hist[5m])`, `irate(wt_hist[5m])`, `delta(wt_hist[5m])`, `resets(wt_hist[10m])`,
		`changes(wt_hist[5m])`, `count_over_time(wt_hist[5m])`, `rate(wt_mixed[5m])`,
		`sum_over_time(wt_mixed[2m])`, `histogram_quantile(0.5, sum(rate(wt_mixed[5m])))`,
		`histogram_count(rate(wt_hist[5m]))`, `quantile_over_time(0.5, wt_hist[5m])`,
		`predict_linear(wt_mixed[10m], 60)`,
		// Aggregations: histograms, an average whose sum overflows.
		`count({job="wt"})`, `sum(wt_mixed)`, `max(rate(wt_mixed[5m]))`, `avg(wt_temp)`, `avg by (job) (wt_temp)`,
	)
	fallBack := len(queries)
	queries = append(queries,
		// Not rewritten at all.
		`absent(rate(wt_nothing{job="x"}[5m]))`, `timestamp(rate(wt_requests_total[5m]))`,
		`rate(wt_requests_total{__metricstor_window__="rate/300000/0/0/0/0"}[5m])`,
		`max_over_time(rate(wt_requests_total[1m])[5m:30s])`, `rate(wt_requests_total[5m] @ 1700003000)`,
		`quantile_over_time(scalar(wt_temp{inst="0"}) / 100, wt_temp[5m])`, `last_over_time(wt_temp[5m])`,
		// A range or offset of a fraction of a millisecond.
		`rate(wt_requests_total[300.0005])`, `increase(wt_requests_total[5m] offset 60.0005)`,
		`absent(sum(wt_nothing))`, `timestamp(count(wt_temp))`, `sum(wt_temp offset 1m)`, `count(wt_temp @ 1700003000)`,
		`max(max_over_time(wt_temp[10m:1m]))`, `stddev(wt_temp)`, `topk(2, wt_temp)`,
		`quantile(1.5, wt_temp)`, `quantile(NaN, wt_temp)`, `quantile(scalar(wt_temp{inst="0"}) / 100, wt_temp)`,
	)

	windowed := 0
	for _, run := range []struct {
		parts int
		step  time.Duration
	}{{1, time.Minute}, {3, 97 * time.Second}, {1, 15 * time.Second}, {3, 83 * time.Second}} {
		se := &splitEngine{Engine: engine, windows: windows, parts: run.parts, minSteps: 1, maxSamples: cfg.MaxSamples, parser: parser.NewParser(parser.Options{})}
		from, to := start.Add(7*time.Minute+333*time.Millisecond), start.Add(2*time.Hour+3*time.Minute)
		for i, qs := range queries {
			want, wantQry := rangeAnswer(t, engine, q, nil, qs, from, to, run.step)
			got, gotQry := rangeAnswer(t, se, q, nil, qs, from, to, run.step)
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Errorf("%d parts, step %v: %s: %s", run.parts, run.step, qs, diff)
			}
			wq, ok := gotQry.(*windowQuery)
			switch {
			case i < onWindowsToo:
				if !ok || wq.ran != wq.windows {
					t.Errorf("%d parts, step %v: %s: not answered on windows", run.parts, run.step, qs)
				} else if len(want.matrix) > 0 {
					windowed++
				}
			case i < answeredEither:
				if !ok {
					t.Errorf("%d parts, step %v: %s: not evaluated on windows", run.parts, run.step, qs)
				}
			case i < fallBack:
				if !ok || wq.ran != wq.plain {
					t.Errorf("%d parts, step %v: %s: not answered by Prometheus's engine after the windows", run.parts, run.step, qs)
				}
			default:
				if ok {
					t.Errorf("%d parts, step %v: %s: evaluated on windows", run.parts, run.step, qs)
				}
			}
			for _, qry := range []promql.Query{wantQry, gotQry} {
				if qry != nil {
					qry.Close()
				}
			}
		}
	}
	// Most of the calls answer something: the comparison is not of empty answers.
	if windowed < 3*onWindows {
		t.Errorf("%d answers on windows were not empty, want at least %d", windowed, 3*onWindows)
	}
}

// TestWindowsServed checks that the served engines (newEngines) evaluate range queries with
// calls over ranges on windows, split into parts, with Prometheus's answers; and that a query
// whose context ends fails as the engine's does (timeout or canceled), not by falling back.
func TestWindowsServed(t *testing.T) {
	q, start := windowTestStore(t)
	from, to, step := start.Add(10*time.Minute), start.Add(2*time.Hour), 10*time.Second // 661 steps: two parts
	const qs = `sum by (inst) (rate(wt_requests_total[5m]))`
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		parallelism, maxSamples int
		windows                 bool // answered on windows, not by Prometheus's engine after them
	}{{1, 50_000_000, true}, {2, 50_000_000, true}, {1, 3900, false}, {2, 3900, false}, {1, 100, false}} {
		// 6 series of 661 answers: at 3900 the windows hold more than they may, and the
		// query is Prometheus's engine's (which fails as it does).
		cfg := createDefaultConfig().(*Config)
		cfg.RangeQueryParallelism = c.parallelism
		cfg.MaxSamples = c.maxSamples
		engine := newEngine(cfg, logger, prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
		_, served := newEngines(cfg, logger, prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
		want, wantQry := rangeAnswer(t, engine, q, nil, qs, from, to, step)
		got, gotQry := rangeAnswer(t, served, q, nil, qs, from, to, step)
		if diff := diffSplitAnswers(got, want); diff != "" {
			t.Errorf("parallelism %d, max_samples %d: %s", c.parallelism, c.maxSamples, diff)
		}
		wq, ok := gotQry.(*windowQuery)
		switch {
		case !ok:
			t.Errorf("parallelism %d, max_samples %d: %T", c.parallelism, c.maxSamples, gotQry)
		case c.windows != (wq.ran == wq.windows):
			t.Errorf("parallelism %d, max_samples %d: answered on windows %v, want %v", c.parallelism, c.maxSamples, wq.ran == wq.windows, c.windows)
		case c.windows && c.parallelism > 1:
			if sq, ok := wq.windows.(*splitQuery); !ok || sq.ranWhole || len(sq.parts) != 2 {
				t.Errorf("parallelism %d: not answered in two parts: %T", c.parallelism, wq.windows)
			}
		}
		if c.maxSamples > 10_000 && len(want.matrix) != 6 {
			t.Errorf("%d series, want 6", len(want.matrix))
		}
		if c.maxSamples == 100 && want.err == "" {
			t.Errorf("max_samples 100: no error")
		}
		wantQry.Close()
		gotQry.Close()
		_ = engine.Close()
	}

	// A Select on windows whose context has ended fails as the engine fails such a query.
	grid := mstorage.StepGrid{Start: from.UnixMilli(), End: to.UnixMilli(), Step: step.Milliseconds(), Lookback: 5 * 60_000}
	hints := &promstorage.SelectHints{Start: grid.Start - grid.Lookback + 1, End: grid.End, Step: grid.Step}
	sel := windowSelector(mustParseExpr(t, `rate(wt_requests_total[5m])`).(*parser.Call)).(*parser.VectorSelector)
	querier, err := windowQueryable{Queryable: q, limit: 1 << 30}.Querier(hints.Start, hints.End)
	if err != nil {
		t.Fatal(err)
	}
	defer querier.Close()
	timedOut, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	var eqt promql.ErrQueryTimeout
	var eqc promql.ErrQueryCanceled
	if set := querier.Select(mstorage.WithStepGrid(timedOut, grid), false, hints, sel.LabelMatchers...); set.Next() || !errors.As(set.Err(), &eqt) {
		t.Errorf("timed out: error %v, want the engine's timeout", set.Err())
	}
	if set := querier.Select(mstorage.WithStepGrid(canceled, grid), false, hints, sel.LabelMatchers...); set.Next() || !errors.As(set.Err(), &eqc) {
		t.Errorf("canceled: error %v, want the engine's", set.Err())
	}
	// Without the grid, or with hints of other steps, the Select does not answer on windows.
	if set := querier.Select(context.Background(), false, hints, sel.LabelMatchers...); !errors.Is(set.Err(), errNotWindowed) {
		t.Errorf("no grid: error %v", set.Err())
	}
	other := *hints
	other.Step++
	if set := querier.Select(mstorage.WithStepGrid(context.Background(), grid), false, &other, sel.LabelMatchers...); !errors.Is(set.Err(), errNotWindowed) {
		t.Errorf("other steps: error %v", set.Err())
	}
	if set := querier.Select(mstorage.WithStepGrid(context.Background(), grid), false, hints, sel.LabelMatchers...); set.Err() != nil || !set.Next() {
		t.Errorf("the grid's steps: error %v", set.Err())
	}
}

func mustParseExpr(t testing.TB, qs string) parser.Expr {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(qs)
	if err != nil {
		t.Fatal(err)
	}
	return expr
}

// TestWindowsPromQLScripts runs Prometheus's own PromQL test scripts (promql/promqltest) and
// evaluates each of their range queries twice more on the scripts' data, with the settings of
// the served engines (names dropped at once, no start timestamps): on windows and by
// Prometheus's engine as it is. The two answers must be the same bit for bit (points, errors,
// warnings, infos); the scripts themselves are answered by their own engine, whose settings
// some of their expectations need.
func TestWindowsPromQLScripts(t *testing.T) {
	opts := promql.EngineOpts{
		MaxSamples:               promqltest.DefaultMaxSamplesPerQuery,
		Timeout:                  100 * time.Second,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   parser.NewParser(promqltest.TestParserOpts),
	}
	plain := promqltest.NewTestEngineWithOpts(t, opts)
	opts.Parser = windowParser{parser.NewParser(promqltest.TestParserOpts)}
	windows := promqltest.NewTestEngineWithOpts(t, opts)
	ce := &comparingEngine{
		QueryEngine: promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery),
		t:           t,
		plain:       plain,
		windows: &splitEngine{Engine: plain, windows: windows, parts: 1, maxSamples: promqltest.DefaultMaxSamplesPerQuery,
			parser: parser.NewParser(promqltest.TestParserOpts)},
	}
	promqltest.RunBuiltinTests(t, ce)
	if ce.windowed < 50 {
		t.Errorf("%d of %d range queries answered on windows, want at least 50", ce.windowed, ce.ranges)
	}
	t.Logf("%d of %d range queries answered on windows, %d again by Prometheus's engine after them", ce.windowed, ce.ranges, ce.fellBack)
}

// comparingEngine is the scripts' engine; each range query it is given is also evaluated by
// plain and by windows, and their answers compared.
type comparingEngine struct {
	promql.QueryEngine
	t                          *testing.T // of the whole run, where differences are reported
	plain                      promql.QueryEngine
	windows                    *splitEngine
	ranges, windowed, fellBack int
}

func (e *comparingEngine) NewRangeQuery(ctx context.Context, q promstorage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	qry, err := e.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	if err != nil {
		return qry, err
	}
	return &comparedQuery{Query: qry, e: e, q: q, qs: qs, start: start, end: end, interval: interval}, nil
}

type comparedQuery struct {
	promql.Query
	e          *comparingEngine
	q          promstorage.Queryable
	qs         string
	start, end time.Time
	interval   time.Duration
}

func (c *comparedQuery) Exec(ctx context.Context) *promql.Result {
	e := c.e
	e.ranges++
	want, wantQry := rangeAnswer(e.t, e.plain, c.q, nil, c.qs, c.start, c.end, c.interval)
	got, gotQry := rangeAnswer(e.t, e.windows, c.q, nil, c.qs, c.start, c.end, c.interval)
	if diff := diffSplitAnswers(got, want); diff != "" {
		e.t.Errorf("%s from %v to %v by %v: on windows: %s", c.qs, c.start, c.end, c.interval, diff)
	}
	if wq, ok := gotQry.(*windowQuery); ok {
		if wq.ran == wq.windows {
			e.windowed++
		} else {
			e.fellBack++
		}
	}
	for _, qry := range []promql.Query{wantQry, gotQry} {
		if qry != nil {
			qry.Close()
		}
	}
	return c.Query.Exec(ctx)
}

// answeredBy is the query that answered q once it ran: for a query on windows, the windows'
// query or Prometheus's engine's after them; q itself otherwise.
func answeredBy(q promql.Query) promql.Query {
	if wq, ok := q.(*windowQuery); ok && wq.ran != nil {
		return wq.ran
	}
	return q
}

// TestAggregationsLookbackMatchPrometheus aggregates plain selectors beside the windows where
// the lookback decides: samples every minute on the minute, a stale marker, a gap, and steps
// every 30 s with a lookback delta of 30 s and of a minute, so that the newest sample is at
// many steps exactly as old as the lookback delta (the engine leaves it out) or the stale marker.
func TestAggregationsLookbackMatchPrometheus(t *testing.T) {
	store, closeStore := openBenchStore(t, t.TempDir())
	t.Cleanup(closeStore)
	start := time.UnixMilli(1_700_000_040_000) // on a minute
	a := store.AppenderV2(context.Background())
	// Zeros of both signs, which compare equal: which one a quantile or an extreme picks is
	// the engine's order.
	for i := range 120 {
		for inst, v := range []float64{math.Copysign(0, -1), 0} {
			if _, err := a.Append(0, labels.FromStrings("__name__", "lb_zero", "inst", fmt.Sprint(inst)), 0, start.UnixMilli()+int64(i)*60_000, v, nil, nil, promstorage.AOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for inst := range 3 {
		lset := labels.FromStrings("__name__", "lb_value", "inst", fmt.Sprint(inst))
		for i := range 120 {
			v := float64(i*10 + inst)
			switch {
			case inst == 1 && i == 50:
				v = math.Float64frombits(value.StaleNaN)
			case inst == 2 && i >= 70 && i < 75:
				continue
			}
			if _, err := a.Append(0, lset, 0, start.UnixMilli()+int64(i)*60_000, v, nil, nil, promstorage.AOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	q := notReadyQueryable{store}

	cfg, engine, windows := windowEngines(t)
	se := &splitEngine{Engine: engine, windows: windows, parts: 1, minSteps: 1, maxSamples: cfg.MaxSamples, parser: parser.NewParser(parser.Options{})}
	from, to := start.Add(30*time.Second), start.Add(2*time.Hour)
	answered := 0
	for _, lookback := range []time.Duration{30 * time.Second, time.Minute, 5 * time.Minute} {
		opts := promql.NewPrometheusQueryOpts(false, lookback, nil)
		for _, qs := range []string{`count(lb_value)`, `sum by (inst) (lb_value)`, `max(lb_value)`, `count(lb_value{inst="1"})`,
			`quantile(0.5, lb_value)`, `quantile(1, lb_zero)`, `quantile(0, lb_zero)`, `quantile(0.5, lb_zero)`,
			`max(lb_zero)`, `min(lb_zero)`, `sum(lb_zero)`, `avg(lb_zero)`} {
			want, wantQry := rangeAnswer(t, engine, q, opts, qs, from, to, 30*time.Second)
			got, gotQry := rangeAnswer(t, se, q, opts, qs, from, to, 30*time.Second)
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Errorf("lookback %v: %s: %s", lookback, qs, diff)
			}
			if wq, ok := gotQry.(*windowQuery); !ok || wq.ran != wq.windows {
				t.Errorf("lookback %v: %s: not answered on windows", lookback, qs)
			}
			answered += len(want.matrix)
			wantQry.Close()
			gotQry.Close()
		}
	}
	if answered == 0 {
		t.Error("every answer was empty")
	}
}

// TestWindowsConformanceMatchPrometheus runs the conformance query set (and the benchmark's
// queries) over the conformance run's demo data on the windows engines, whole and in parts,
// with the default lookback and one of 2 minutes, against Prometheus's engine as it is, and
// requires the same answers bit for bit: its calls and aggregations are what dashboards ask.
func TestWindowsConformanceMatchPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: it loads 20 minutes of demo data and runs about 1,700 range queries; it runs in `make unit` and `make test`, which do not pass -short")
	}
	queries := conformanceQueries(t, `count({job="demo"})`, `sum without (instance) (demo_memory_usage_bytes)`)
	q, start := demoStore(t)
	cfg, engine, windows := windowEngines(t)
	onWindows, runs := 0, 0
	for round, run := range []struct {
		parts    int
		step     time.Duration
		lookback time.Duration
	}{{1, time.Minute, 0}, {3, 97 * time.Second, 0}, {1, 83 * time.Second, 2 * time.Minute}} {
		se := &splitEngine{Engine: engine, windows: windows, parts: run.parts, minSteps: 1, maxSamples: cfg.MaxSamples, parser: parser.NewParser(parser.Options{})}
		opts := promql.NewPrometheusQueryOpts(false, run.lookback, nil)
		from, to := start.Add(4*time.Minute+333*time.Millisecond), start.Add(21*time.Minute)
		for i, qs := range queries {
			if raceEnabled && i%3 != round {
				continue // under the race detector, each query once
			}
			runs++
			want, wantQry := rangeAnswer(t, engine, q, opts, qs, from, to, run.step)
			got, gotQry := rangeAnswer(t, se, q, opts, qs, from, to, run.step)
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Errorf("%d parts, step %v, lookback %v: %s: %s", run.parts, run.step, run.lookback, qs, diff)
			}
			if wq, ok := gotQry.(*windowQuery); ok && wq.ran == wq.windows && len(want.matrix) > 0 {
				onWindows++
			}
			for _, qry := range []promql.Query{wantQry, gotQry} {
				if qry != nil {
					qry.Close()
				}
			}
		}
	}
	// Much of the set has a call over a range or an aggregation that the windows answer (636
	// of 1,656 with data when written).
	if 3*onWindows < runs {
		t.Errorf("%d of %d range queries answered on windows with data, want at least a third", onWindows, runs)
	}
	t.Logf("%d of %d range queries answered on windows with data", onWindows, runs)
}

// TestAggregatorLimit checks that an aggregation beside the windows holds at most what a part
// of the query may (its groups' values at every step, weighed in samples by their bytes), and
// fails over to the engine beyond: a sum without one label of many series has about as many
// groups as series.
func TestAggregatorLimit(t *testing.T) {
	g := mstorage.StepGrid{Start: 0, End: 99_000, Step: 1000, Lookback: 300_000} // 100 steps
	agg, ok := parseAggFields([]string{"sum", "without", "other"})
	if !ok {
		t.Fatal("sum without (other) not parsed")
	}
	limit := int(3 * 100 * aggValueSamples) // three groups
	a := newAggregator(agg, g, limit)
	points := []promql.FPoint{{T: 0, F: 1}, {T: 5000, F: 2}}
	for i := range 4 {
		err := a.add(labels.FromStrings("inst", strconv.Itoa(i), "other", "x"), points)
		if want := i < 3; want != (err == nil) || (err != nil && !errors.Is(err, errNotWindowed)) {
			t.Errorf("group %d: error %v", i+1, err)
		}
		// Another series of a group held already costs nothing more.
		if err := a.add(labels.FromStrings("inst", "0", "other", strconv.Itoa(i)), points); err != nil {
			t.Errorf("a series of the first group: %v", err)
		}
	}
	if got := a.series(); len(got) != 3 || got[0].points[0].F != 5 || got[1].points[0].F != 1 {
		t.Errorf("groups %v", got)
	}
}

// windowEngines are the default configuration's engine as it is and the windows engine, closed
// at the end of the test.
func windowEngines(t *testing.T) (cfg *Config, engine, windows *promql.Engine) {
	t.Helper()
	cfg = createDefaultConfig().(*Config)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine = newEngine(cfg, logger, prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	windows = newEngine(cfg, logger, prometheus.NewRegistry(), windowParser{parser.NewParser(parser.Options{})})
	t.Cleanup(func() {
		_ = engine.Close()
		_ = windows.Close()
	})
	return cfg, engine, windows
}
