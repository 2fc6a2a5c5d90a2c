package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/stats"
)

// minStepsPerPart is the fewest steps a part of a split range query has: below, the second
// select and the windows read twice at the seams cost more than a core saves.
const minStepsPerPart = 100

// splitEngine is Prometheus's engine, except that a long range query is evaluated as up to
// `parts` ranges of consecutive steps at the same time, one goroutine each, and the answers
// joined. Prometheus's engine evaluates a query on one core; the dashboards' range queries over
// a day are what waits on it.
//
// The answer is Prometheus's, bit for bit: the engine evaluates every step of a range query
// from the data and the step's own timestamp (windows, lookback, subquery steps aligned to
// absolute time), never from the query's start or end, except where the query says `@ start()`
// or `@ end()` or uses the functions and duration expressions of the query's range, which is
// never split (see splittable). A series' points at the steps of one part are the ones
// the whole query gives at those steps, and a range query's answer is sorted by labels, so the
// parts' answers join into the whole's. Annotations are merged as Prometheus merges its own
// (the counted ones, such as forced monotonicity, add up). Where the parts cannot tell what the
// whole would answer, the whole query runs instead, on Prometheus's engine as it is: when a
// part fails other than by timeout or cancellation (so the error is the whole query's, found
// at the same step), and when the parts together held more samples at their peaks than
// max_samples (a whole query over the limit fails as in Prometheus; the parts' peaks add up to
// at least the whole's). The parts' engine holds each to max_samples / parts, so that the parts
// of a query never hold more than max_samples at once either; one over its share fails, and the
// whole query runs.
//
// Instant queries, short range queries and queries asking for per-step statistics are the
// engine's own. Every range query it returns, whole or in parts, tells the store its steps
// where that is safe (gridQuery, stepgrid.go), split or not; and one with functions over ranges
// that can be evaluated on windows is evaluated by the windows engines, whole or in parts the
// same way, and again as described here where the windows cannot answer (windowQuery,
// windows.go).
type splitEngine struct {
	*promql.Engine                // evaluates whole queries, and a split one again when its parts cannot answer
	part           *promql.Engine // evaluates the parts (nil: the same engine)
	// windows and windowPart evaluate, whole and in parts, the range queries with calls to
	// evaluate on windows (windows.go); nil: none are.
	windows, windowPart *promql.Engine
	parts               int           // the most parts of one query; 1 never splits
	minSteps            int           // the fewest steps of a part
	maxSamples          int           // the engine's max_samples
	parser              parser.Parser // the engine's, to read the query before the engine folds it (nil: the default)
}

func (e *splitEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	whole, err := e.Engine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	if err != nil {
		return whole, err
	}
	stmt, ok := whole.Statement().(*parser.EvalStmt)
	if !ok {
		return whole, nil
	}
	expr, parsed := e.parse(qs)
	thin := parsed && onStepsOnly(expr)
	plain := e.split(ctx, e.partEngine(), q, opts, qs, whole, stmt, expr, parsed, thin)
	// On windows where the query tells the store its steps (the windows' selectors are answered
	// there), unless per-step statistics are asked for or start timestamps are used (which
	// the windows do not read).
	if e.windows == nil || !thin || !windowed(expr) {
		return plain, nil
	}
	if _, grid := withStepGrid(whole, true).(gridQuery); !grid {
		return plain, nil
	}
	if opts != nil && (opts.EnablePerStepStats() || (opts.UseStartTimestamps() != nil && *opts.UseStartTimestamps())) {
		return plain, nil
	}
	// A Select on windows holds its answers at once, up to what a part may hold.
	wq := windowQueryable{Queryable: q, limit: max(1, e.maxSamples/max(e.parts, 1))}
	wwhole, err := e.windows.NewRangeQuery(ctx, wq, opts, qs, start, end, interval)
	if err != nil {
		return plain, nil
	}
	wstmt, ok := wwhole.Statement().(*parser.EvalStmt)
	if !ok {
		wwhole.Close()
		return plain, nil
	}
	windowPart := e.windowPart
	if windowPart == nil {
		windowPart = e.windows
	}
	return &windowQuery{
		windows: e.split(ctx, windowPart, wq, opts, qs, wwhole, wstmt, expr, parsed, thin),
		plain:   plain,
	}, nil
}

// split returns whole (a range query) telling the store its steps when thin, split
// into parts evaluated by partEngine where it is splittable (see splitEngine).
func (e *splitEngine) split(ctx context.Context, partEngine *promql.Engine, q storage.Queryable, opts promql.QueryOpts, qs string,
	whole promql.Query, stmt *parser.EvalStmt, expr parser.Expr, parsed, thin bool,
) promql.Query {
	whole = withStepGrid(whole, thin)
	if e.parts < 2 || !parsed || !splittable(expr, opts) {
		return whole
	}
	// The steps in milliseconds, as the engine counts them: parts start on the whole's steps.
	startMs, endMs, stepMs := stmt.Start.UnixNano()/int64(time.Millisecond), stmt.End.UnixNano()/int64(time.Millisecond), stmt.Interval.Milliseconds()
	if stepMs <= 0 || endMs < startMs {
		return whole
	}
	steps := (endMs-startMs)/stepMs + 1
	// A part of one step would be evaluated as an instant query (the engine checks start ==
	// end: sort() in a range query warns, step() is 0): two at least.
	n := int(min(int64(e.parts), steps/int64(max(e.minSteps, 2))))
	if n < 2 {
		return whole
	}
	parts := make([]promql.Query, 0, n)
	for i := range int64(n) {
		lo, hi := i*steps/int64(n), (i+1)*steps/int64(n) // steps [lo, hi) of the whole
		p, err := partEngine.NewRangeQuery(ctx, q, opts, qs,
			time.UnixMilli(startMs+lo*stepMs), time.UnixMilli(startMs+(hi-1)*stepMs), time.Duration(stepMs)*time.Millisecond)
		if err != nil {
			// The whole query was accepted; a part can only fail to start by waiting for
			// a slot past its context. The whole answers as it would.
			for _, p := range parts {
				p.Close()
			}
			return whole
		}
		parts = append(parts, withStepGrid(p, thin))
	}
	return &splitQuery{whole: whole, parts: parts, maxSamples: e.maxSamples}
}

func (e *splitEngine) partEngine() *promql.Engine {
	if e.part != nil {
		return e.part
	}
	return e.Engine
}

// parse reads qs as the engine does; false when it does not parse.
func (e *splitEngine) parse(qs string) (parser.Expr, bool) {
	p := e.parser
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	expr, err := p.ParseExpr(qs)
	return expr, err == nil
}

// splittable reports whether a range query's answer does not depend on its start and end
// beyond which steps it has, judged on the query as parsed (the statement's expression has the
// functions of the query's range already folded into numbers): no `@ start()` or `@ end()`, no
// start(), end(), range() or step() (experimental functions of the query's range), no duration
// expression (`[range()]`, `offset min_of(range(), 8s)`), and no per-step statistics (the parts
// would count the windows at their seams again). A query that does not parse is left whole.
func splittable(expr parser.Expr, opts promql.QueryOpts) bool {
	if opts != nil && opts.EnablePerStepStats() {
		return false
	}
	ok := true
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			ok = ok && n.StartOrEnd == 0 && n.OriginalOffsetExpr == nil
		case *parser.MatrixSelector:
			ok = ok && n.RangeExpr == nil
		case *parser.SubqueryExpr:
			ok = ok && n.StartOrEnd == 0 && n.OriginalOffsetExpr == nil && n.RangeExpr == nil && n.StepExpr == nil
		case *parser.DurationExpr:
			ok = false
		case *parser.Call:
			switch n.Func.Name {
			case "start", "end", "range", "step":
				ok = false
			}
		}
		return nil
	})
	return ok
}

// splitQuery is a range query evaluated as parts (see splitEngine).
type splitQuery struct {
	whole      promql.Query // its statement and string; evaluated when the parts cannot answer
	parts      []promql.Query
	maxSamples int

	stats    *stats.Statistics // of the parts together, once they ran
	ranWhole bool              // the whole query answered
}

func (q *splitQuery) Exec(ctx context.Context) *promql.Result {
	timers := stats.NewQueryTimers()
	total := timers.GetTimer(stats.ExecTotalTime).Start()
	eval := timers.GetTimer(stats.EvalTotalTime).Start()
	results := make([]*promql.Result, len(q.parts))
	var wg sync.WaitGroup
	for i, p := range q.parts {
		wg.Go(func() { results[i] = p.Exec(ctx) })
	}
	wg.Wait()
	eval.Stop()

	samples := stats.NewQuerySamples(false)
	for i, r := range results {
		if r.Err != nil {
			if errors.Is(r.Err, errNotWindowed) {
				// Evaluated again as it is (windowQuery), not by the whole on windows.
				total.Stop()
				q.stats = &stats.Statistics{Timers: timers, Samples: samples}
				return r
			}
			var timeout promql.ErrQueryTimeout
			var canceled promql.ErrQueryCanceled
			if errors.As(r.Err, &timeout) || errors.As(r.Err, &canceled) {
				total.Stop()
				q.stats = &stats.Statistics{Timers: timers, Samples: samples}
				return r
			}
			return q.execWhole(ctx)
		}
		if _, ok := r.Value.(promql.Matrix); !ok {
			return q.execWhole(ctx)
		}
		if s := q.parts[i].Stats(); s != nil && s.Samples != nil {
			samples.TotalSamples += s.Samples.TotalSamples
			samples.SamplesRead += s.Samples.SamplesRead
			samples.TotalSeries += s.Samples.TotalSeries
			// The parts ran at the same time: their peaks add up.
			samples.PeakSamples += s.Samples.PeakSamples
		}
	}
	if samples.PeakSamples > q.maxSamples {
		return q.execWhole(ctx)
	}

	res := &promql.Result{}
	matrices := make([]promql.Matrix, len(results))
	for i, r := range results {
		matrices[i] = r.Value.(promql.Matrix)
		res.Warnings.Merge(r.Warnings)
	}
	res.Value = joinMatrices(matrices)
	total.Stop()
	q.stats = &stats.Statistics{Timers: timers, Samples: samples}
	return res
}

// execWhole answers with the whole query, on Prometheus's engine as it is.
func (q *splitQuery) execWhole(ctx context.Context) *promql.Result {
	q.ranWhole = true
	return q.whole.Exec(ctx)
}

// joinMatrices joins the answers of consecutive parts of a range query, each sorted by labels
// as the engine sorts a range query's answer: one series per label set, its points in time order.
func joinMatrices(ms []promql.Matrix) promql.Matrix {
	var all []promql.Series
	for _, m := range ms {
		all = append(all, m...)
	}
	// Stable: a series' pieces stay in the order of the parts, which is time order.
	slices.SortStableFunc(all, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	out := make(promql.Matrix, 0, len(all))
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && labels.Equal(all[j].Metric, all[i].Metric) {
			j++
		}
		s := all[i]
		if j > i+1 {
			// The pieces' slices belong to the parts' queries (their pools, on Close): the
			// joined series gets its own.
			var nf, nh int
			for _, p := range all[i:j] {
				nf += len(p.Floats)
				nh += len(p.Histograms)
			}
			s.Floats, s.Histograms = nil, nil
			if nf > 0 {
				s.Floats = make([]promql.FPoint, 0, nf)
			}
			if nh > 0 {
				s.Histograms = make([]promql.HPoint, 0, nh)
			}
			for _, p := range all[i:j] {
				s.Floats = append(s.Floats, p.Floats...)
				s.Histograms = append(s.Histograms, p.Histograms...)
			}
		}
		out = append(out, s)
		i = j
	}
	return out
}

// Close hands the parts' answers (and the whole's) back to the engine's pools.
func (q *splitQuery) Close() {
	for _, p := range q.parts {
		p.Close()
	}
	q.whole.Close()
}

func (q *splitQuery) Statement() parser.Statement { return q.whole.Statement() }

// Stats are the whole query's when it answered, else the parts' together: samples added up,
// the peak as the sum of the parts' peaks (they were held at the same time), and the times of
// the evaluation as a whole (exec and eval total only).
func (q *splitQuery) Stats() *stats.Statistics {
	if q.ranWhole || q.stats == nil {
		return q.whole.Stats()
	}
	return q.stats
}

func (q *splitQuery) Cancel() {
	for _, p := range q.parts {
		p.Cancel()
	}
	q.whole.Cancel()
}

func (q *splitQuery) String() string { return q.whole.String() }

var (
	_ promql.QueryEngine = (*splitEngine)(nil)
	_ promql.Query       = (*splitQuery)(nil)
)
