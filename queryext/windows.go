package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	mstorage "github.com/metricstor/metricstor/storage"
)

// A range query applies a function over a range to each series at every step: rate(x[5m])
// stepping by 60 s reads the 5 minutes before each step. Prometheus's engine reads a series'
// samples through a ring buffer into a window it shifts and copies at every step, which is
// most of what such a query costs (more than the function). Here a series' samples are read
// once, in time order, into a buffer that holds the current window, and each step's window is
// a slice of it, handed to Prometheus's own implementation of the function (promql.FunctionCalls) with what the engine
// would hand it: the window's float samples in (t-offset-range, t-offset] without stale
// markers, the step's time, the selector as parsed. So the values are the engine's, bit for bit.
//
// The engine is told through the query it evaluates: the windows engine's parser
// (windowParser) replaces each such call by an instant-vector selector with the call's
// matchers and one more, windowLabel, that says the function, range, offset and positions.
// The store's Queryable is wrapped (windowQueryable) so that a Select with that matcher returns
// one series per input series with the function's value at each step and a stale marker at a
// step without one: what the engine then reads at the query's steps, looking back from each
// step, is exactly the call's answer, and every node around it (aggregations, binary
// operators, other functions) evaluates as it would. A call is replaced only where that holds:
// a query of the steps its grid says (onStepsOnly: no subquery), outside the arguments of the
// functions that read their argument's expression rather than its value (absent and
// timestamp), on a plain range selector (no @, no smoothed or anchored, no duration
// expression), for the functions in windowFuncs (a range argument, and a number for two of them).
//
// The selector's series carry the call's labels: the input's without the metric name (and
// the other metadata labels), as the engine gives them when it drops names at once. That, and
// the windows holding no start timestamps, is why the engines of newPromEngine must keep
// EngineOpts.EnableDelayedNameRemoval and UseStartTimestamps off (and splitEngine does not
// use windows for a query whose options ask for start timestamps).
//
// Some functions cost more in Prometheus's implementation than in their arithmetic (rate walks
// the whole window for counter resets at every step): those windows are computed by the same
// operations in the same order beside the buffer (windowcalc.go), and only what that does not
// cover is handed to Prometheus's function.
//
// What is not the engine's answer is not given: a histogram sample in a window, or two output
// series with the same labels once the name is dropped, make the Select fail with
// errNotWindowed, and the query is evaluated again by Prometheus's engine as it is
// (windowQuery); so does a Select whose answers would be more than a part of the query may
// hold (they are held at once, before the engine reads them). The annotations are the engine's: those the function returns, and the
// engine's own info for rate or increase of a metric whose name does not say counter.
//
// What differs is only what the engine counts: it counts each step's window as samples held
// (max_samples, and the statistics of stats=...); here it holds the calls' answers, one sample
// a step. A query that would hold more than max_samples in windows is answered; per-step
// statistics (stats=all) are the engine's own, evaluated as they are.

// windowFuncs are the functions evaluated on windows, by the index of their range argument: a
// float per window of floats, and nothing read but the window, the step's time, the selector's
// range, offset and position (for the annotations) and, for the two with a second argument, a
// number written in the query (the engine hands them its value at every step).
var windowFuncs = map[string]int{
	"rate": 0, "increase": 0, "irate": 0, "delta": 0, "idelta": 0, "deriv": 0,
	"resets": 0, "changes": 0,
	"avg_over_time": 0, "min_over_time": 0, "max_over_time": 0, "sum_over_time": 0,
	"count_over_time": 0, "stddev_over_time": 0, "stdvar_over_time": 0,
	"present_over_time":  0,
	"quantile_over_time": 1, "predict_linear": 0,
}

// windowLabel is the name of the matcher that marks a selector standing for a call. Names with
// two leading underscores are Prometheus's to give; a query that names this one itself is not
// rewritten (windowed).
const windowLabel = "__metricstor_window__"

// errNotWindowed is what a windows query fails with where its answer would not be the engine's;
// windowQuery then evaluates the query on Prometheus's engine as it is.
var errNotWindowed = errors.New("not evaluated on windows")

// windowParser is the parser of the windows engines: the query as parsed, with the calls that
// are evaluated on windows replaced by their selectors (rewriteWindows).
type windowParser struct{ parser.Parser }

func (p windowParser) ParseExpr(input string) (parser.Expr, error) {
	expr, err := p.Parser.ParseExpr(input)
	if err != nil {
		return expr, err
	}
	return rewriteWindows(expr, windowSelector), nil
}

// windowed reports whether expr has a call to evaluate on windows, and does not name
// windowLabel itself.
func windowed(expr parser.Expr) bool {
	named := false
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		if vs, ok := node.(*parser.VectorSelector); ok {
			for _, m := range vs.LabelMatchers {
				named = named || m.Name == windowLabel
			}
		}
		return nil
	})
	if named {
		return false
	}
	calls := 0
	rewriteWindows(expr, func(e parser.Expr) parser.Expr {
		calls++
		return e
	})
	return calls > 0
}

// rewriteWindows returns expr with each call that can be evaluated on windows, and each
// aggregation evaluated beside them (windowagg.go), replaced by what replace returns for it
// (in place: expr is changed).
func rewriteWindows(expr parser.Expr, replace func(parser.Expr) parser.Expr) parser.Expr {
	return walkWindows(expr, "", replace)
}

// walkWindows is rewriteWindows for e, an argument of the function named parent ("" for none).
// Subqueries are not entered: their steps are not the query's.
func walkWindows(e parser.Expr, parent string, replace func(parser.Expr) parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.AggregateExpr:
		if aggregatesOnWindows(n, parent) {
			return replace(n)
		}
		n.Expr = walkWindows(n.Expr, "", replace)
	case *parser.BinaryExpr:
		n.LHS = walkWindows(n.LHS, "", replace)
		n.RHS = walkWindows(n.RHS, "", replace)
	case *parser.ParenExpr:
		n.Expr = walkWindows(n.Expr, "", replace)
	case *parser.UnaryExpr:
		n.Expr = walkWindows(n.Expr, "", replace)
	case *parser.Call:
		if onWindows(n, parent) {
			return replace(n)
		}
		for i := range n.Args {
			n.Args[i] = walkWindows(n.Args[i], n.Func.Name, replace)
		}
	}
	return e
}

// onWindows reports whether c, an argument of the function named parent, is evaluated on
// windows: one of windowFuncs, on a plain range selector, and not the argument of a function
// that reads its argument's expression (absent takes labels from a selector's matchers,
// timestamp the times of a selector's samples).
func onWindows(c *parser.Call, parent string) bool {
	switch parent {
	case "absent", "absent_over_time", "timestamp", "start_timestamp", "info":
		return false
	}
	at, ok := windowFuncs[c.Func.Name]
	if !ok || at >= len(c.Args) {
		return false
	}
	for i, a := range c.Args {
		if _, number := a.(*parser.NumberLiteral); i != at && !number {
			return false
		}
	}
	ms, ok := c.Args[at].(*parser.MatrixSelector)
	if !ok || ms.RangeExpr != nil {
		return false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	// The selector says range and offset in whole milliseconds (a number of seconds such as
	// [1.0005] is a duration too; rate divides by it as it is).
	return ok && vs.Timestamp == nil && vs.StartOrEnd == 0 && !vs.Anchored && !vs.Smoothed &&
		vs.OriginalOffsetExpr == nil && ms.Range%time.Millisecond == 0 && vs.OriginalOffset%time.Millisecond == 0
}

// windowSelector is the selector standing for e, a call (see onWindows) or an aggregation
// (see aggregatesOnWindows): the selector's matchers, and windowLabel saying the function, the
// range and offset in milliseconds, the positions of the range selector in the query (its
// annotations name it), and the numbers of the other arguments with their positions (for a
// plain selector under an aggregation: no function, range or offset, and its positions), then
// for an aggregation its operator, by or without and its grouping; over e's positions.
func windowSelector(e parser.Expr) parser.Expr {
	var (
		vs     *parser.VectorSelector
		fields []string
	)
	switch n := e.(type) {
	case *parser.Call:
		vs, fields = callSpecFields(n)
	case *parser.AggregateExpr:
		switch in := unparen(n.Expr).(type) {
		case *parser.Call:
			vs, fields = callSpecFields(in)
		case *parser.VectorSelector:
			vs = in
			start, end := strconv.Itoa(int(vs.PosRange.Start)), strconv.Itoa(int(vs.PosRange.End))
			fields = []string{"", "0", "0", start, end, end, ""}
		}
		fields = append(fields, aggSpecFields(n)...)
	}
	return &parser.VectorSelector{
		Name:          vs.Name,
		LabelMatchers: append(slices.Clone(vs.LabelMatchers), labels.MustNewMatcher(labels.MatchEqual, windowLabel, strings.Join(fields, "/"))),
		PosRange:      e.PositionRange(),
	}
}

// callSpecFields are c's selector and the fields of windowLabel's value that say c.
func callSpecFields(c *parser.Call) (*parser.VectorSelector, []string) {
	at := windowFuncs[c.Func.Name]
	ms := c.Args[at].(*parser.MatrixSelector)
	vs := ms.VectorSelector.(*parser.VectorSelector)
	var numbers []string
	for i, a := range c.Args {
		if i != at {
			n := a.(*parser.NumberLiteral)
			numbers = append(numbers, strconv.FormatFloat(n.Val, 'g', -1, 64)+":"+
				strconv.Itoa(int(n.PosRange.Start))+":"+strconv.Itoa(int(n.PosRange.End)))
		}
	}
	return vs, []string{
		c.Func.Name,
		strconv.FormatInt(ms.Range.Milliseconds(), 10),
		strconv.FormatInt(vs.OriginalOffset.Milliseconds(), 10),
		strconv.Itoa(int(vs.PosRange.Start)),
		strconv.Itoa(int(vs.PosRange.End)),
		strconv.Itoa(int(ms.EndPos)),
		strings.Join(numbers, ","),
	}
}

// windowSpec is a call or an aggregation as its selector says it (windowSelector).
type windowSpec struct {
	name        string // the function; "" for the plain selector of an aggregation
	call        promql.FunctionCall
	rng, offset int64 // milliseconds
	args        parser.Expressions
	numbers     []promql.Vector // the values of the arguments other than the range, as the engine hands them
	calc        windowCalc      // how a window's answer is computed where not by call
	agg         *windowAgg      // the aggregation of the answers; nil for none
}

func parseWindowSpec(s string, matchers []*labels.Matcher) (windowSpec, error) {
	bad := fmt.Errorf("%w: %s %q", errNotWindowed, windowLabel, s)
	f := strings.Split(s, "/")
	if len(f) != 7 && len(f) != 10 {
		return windowSpec{}, bad
	}
	var agg *windowAgg
	if len(f) == 10 {
		var ok bool
		if agg, ok = parseAggFields(f[7:]); !ok {
			return windowSpec{}, bad
		}
		f = f[:7]
	}
	if f[0] == "" {
		// A plain selector, read at the steps.
		if agg == nil || f[1] != "0" || f[2] != "0" || f[6] != "" {
			return windowSpec{}, bad
		}
		return windowSpec{agg: agg}, nil
	}
	at, ok := windowFuncs[f[0]]
	if !ok {
		return windowSpec{}, bad
	}
	var n [5]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return windowSpec{}, bad
		}
		n[i] = v
	}
	vs := &parser.VectorSelector{
		LabelMatchers:  matchers,
		Offset:         time.Duration(n[1]) * time.Millisecond,
		OriginalOffset: time.Duration(n[1]) * time.Millisecond,
		PosRange:       posrange.PositionRange{Start: posrange.Pos(n[2]), End: posrange.Pos(n[3])},
	}
	spec := windowSpec{
		name:   f[0],
		call:   promql.FunctionCalls[f[0]],
		rng:    n[0],
		offset: n[1],
		calc:   windowCalcs[f[0]],
		agg:    agg,
	}
	var numbers []string
	if f[6] != "" {
		numbers = strings.Split(f[6], ",")
	}
	for _, num := range numbers {
		p := strings.Split(num, ":")
		if len(p) != 3 {
			return windowSpec{}, bad
		}
		v, err1 := strconv.ParseFloat(p[0], 64)
		start, err2 := strconv.Atoi(p[1])
		end, err3 := strconv.Atoi(p[2])
		if err1 != nil || err2 != nil || err3 != nil {
			return windowSpec{}, bad
		}
		spec.args = append(spec.args, &parser.NumberLiteral{Val: v, PosRange: posrange.PositionRange{Start: posrange.Pos(start), End: posrange.Pos(end)}})
		spec.numbers = append(spec.numbers, promql.Vector{promql.Sample{F: v}})
	}
	if at > len(spec.args) {
		return windowSpec{}, bad
	}
	spec.args = slices.Insert(spec.args, at, parser.Expr(&parser.MatrixSelector{VectorSelector: vs, Range: time.Duration(n[0]) * time.Millisecond, EndPos: posrange.Pos(n[4])}))
	return spec, nil
}

// windowQueryable is the store's Queryable for the windows engines: a Select of a selector
// standing for a call (windowLabel) is the call's answer at the query's steps.
type windowQueryable struct {
	storage.Queryable
	limit int // the most answers a Select holds (see evalWindows)
}

func (q windowQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return windowQuerier{Querier: inner, src: q.Queryable, limit: q.limit}, nil
}

type windowQuerier struct {
	storage.Querier
	src   storage.Queryable // for the windows, which reach further back than the querier
	limit int
}

func (q windowQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	i := slices.IndexFunc(ms, func(m *labels.Matcher) bool { return m.Name == windowLabel })
	if i < 0 {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	matchers := slices.Delete(slices.Clone(ms), i, i+1)
	spec, err := parseWindowSpec(ms[i].Value, matchers)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	// The selector is evaluated at the steps of the query's grid, and nowhere else: the
	// answer at each step is there.
	g, ok := mstorage.StepGridFrom(ctx)
	if !ok || !g.Selects(hints) {
		return storage.ErrSeriesSet(fmt.Errorf("%w: no step grid", errNotWindowed))
	}
	return evalWindows(ctx, q.src, q.limit, sortSeries, g, spec, matchers)
}

// evalWindows returns the answers of spec's call for the series that matchers select, at the
// steps of g: the series whose calls answer at no step are left out, as the engine leaves them.
// With an aggregation, the answers of its groups instead (windowagg.go).
func evalWindows(ctx context.Context, src storage.Queryable, limit int, sortSeries bool, g mstorage.StepGrid, spec windowSpec, matchers []*labels.Matcher) storage.SeriesSet {
	// The first window ends at Start-offset and holds what is after its range before that.
	hints := &storage.SelectHints{
		Start: g.Start - spec.offset - spec.rng, End: g.End - spec.offset, Step: g.Step, Range: spec.rng, Func: spec.name,
	}
	plain := spec.name == ""
	if plain {
		// A plain selector, with the hints the engine gives it: the store leaves out the
		// samples no step reads (g.Selects).
		hints = &storage.SelectHints{Start: g.Start - g.Lookback + 1, End: g.End, Step: g.Step, Func: spec.agg.op.String()}
	}
	querier, err := src.Querier(hints.Start, hints.End)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	defer querier.Close()
	set := querier.Select(ctx, sortSeries, hints, matchers...)

	var (
		out    windowSet
		enh    = &promql.EvalNodeHelper{Out: make(promql.Vector, 0, 1), LookbackDelta: time.Duration(g.Lookback) * time.Millisecond}
		in     = make(promql.Matrix, 1)
		it     chunkenc.Iterator
		sw     seriesWindows
		shapes = xSumsCache{}
		held   int
		byHash = map[uint64][]labels.Labels{} // the labels of the answers so far, by their hash
		agg    *aggregator
		buf    []promql.FPoint // an input series' answers, while they are folded into an aggregation
	)
	if spec.agg != nil {
		agg = newAggregator(spec.agg, g, limit)
	}
	for n := 0; set.Next(); n++ {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return storage.ErrSeriesSet(contextErr(err))
			}
		}
		s := set.At()
		in[0].Metric = s.Labels()
		if plain {
			it = s.Iterator(it)
			if buf, err = lookbackPoints(buf[:0], it, g); err != nil {
				return storage.ErrSeriesSet(contextErr(err))
			}
			if len(buf) > 0 {
				if err := agg.add(in[0].Metric, buf); err != nil {
					return storage.ErrSeriesSet(err)
				}
			}
			continue
		}
		sw.reset(s.Iterator(it), spec.calc)
		it = sw.it
		var points []promql.FPoint
		if agg != nil {
			points = buf[:0]
		}
		answers := 0
		for ts := g.Start; ts <= g.End; ts += g.Step {
			wmax := ts - spec.offset
			w, err := sw.window(wmax-spec.rng, wmax)
			if err != nil {
				return storage.ErrSeriesSet(err)
			}
			// The window's answer, computed here where windowcalc.go can (done), else by the
			// function.
			var (
				f              float64
				answered, done bool
			)
			switch {
			case len(w) == 0:
				done = true
			case spec.calc.counter() && len(w) >= 2 && !sw.resets.within(sw.first(), sw.last()):
				f, answered, done = counterRate(w, ts, spec.rng, spec.offset, spec.calc == calcRate), true, true
			case spec.calc.instant() && len(w) >= 2 && w[len(w)-1].T != w[len(w)-2].T:
				f, answered, done = instantRate(w, spec.calc == calcIrate), true, true
			case spec.calc.regression() && len(w) >= 2:
				// deriv about the first sample's time, predict_linear about the step's.
				at := w[0].T
				if spec.calc == calcPredictLinear {
					at = ts
				}
				// Regular: no change of interval from the window's third sample on.
				xs := shapes.get(w, at, !sw.irregular.within(sw.first()+1, sw.last()))
				slope, intercept := regression(w, at, xs)
				f, answered, done = slope, true, true
				if spec.calc == calcPredictLinear {
					f = slope*spec.numbers[0][0].F + intercept
				}
			case spec.calc == calcSumOverTime:
				f, answered, done = sumOverTime(w), true, true
			case spec.calc == calcAvgOverTime:
				f, answered = avgOverTime(w)
				done = answered
			case spec.calc == calcStdvarOverTime:
				f, answered, done = varianceOverTime(w), true, true
			case spec.calc == calcStddevOverTime:
				f, answered, done = math.Sqrt(varianceOverTime(w)), true, true
			case spec.calc == calcResets:
				f, answered, done = float64(sw.resets.count(sw.first(), sw.last())), true, true
			case spec.calc == calcChanges:
				f, answered, done = float64(sw.changes.count(sw.first(), sw.last())), true, true
			case spec.calc.extreme():
				f, answered, done = sw.extremes.answer(sw.buf, sw.lo, sw.hi, sw.dropped, spec.calc == calcMaxOverTime), true, true
			}
			if !done {
				in[0].Floats = w
				enh.Ts = ts
				vec, annos := spec.call(spec.numbers, in, spec.args, enh)
				out.warnings.Merge(annos)
				enh.Out = vec[:0]
				if len(vec) > 0 {
					f, answered = vec[0].F, true
				}
			}
			switch {
			case answered:
				if points == nil {
					// Room for an answer at every step left: most series have them.
					points = make([]promql.FPoint, 0, (g.End-ts)/g.Step+1)
				}
				points = append(points, promql.FPoint{T: ts, F: f})
				answers++
			case len(points) > 0 && !value.IsStaleNaN(points[len(points)-1].F):
				// No answer at this step: a stale marker, so that the step does not look back
				// to the answer before it (a run of them needs only the first).
				points = append(points, promql.FPoint{T: ts, F: math.Float64frombits(value.StaleNaN)})
			}
		}
		if err := it.Err(); err != nil {
			return storage.ErrSeriesSet(contextErr(err))
		}
		// The answers are held until the engine reads them, as the engine holds its own: at
		// most as many as a query may hold (else the engine evaluates it, and fails as it does).
		if held += len(points); agg == nil && held > limit {
			return storage.ErrSeriesSet(fmt.Errorf("%w: more than %d answers", errNotWindowed, limit))
		}
		if answers == 0 {
			continue
		}
		if spec.calc.counter() {
			if name := in[0].Metric.Get(labels.MetricName); name != "" && !strings.HasSuffix(name, "_total") &&
				!strings.HasSuffix(name, "_sum") && !strings.HasSuffix(name, "_count") && !strings.HasSuffix(name, "_bucket") {
				out.warnings.Add(annotations.NewPossibleNonCounterInfo(name, spec.args[0].PositionRange()))
			}
		}
		lset := in[0].Metric.DropReserved(schema.IsMetadataLabel)
		h := lset.Hash()
		for _, other := range byHash[h] {
			if labels.Equal(other, lset) {
				// The engine would merge or refuse these; it evaluates the query itself.
				return storage.ErrSeriesSet(fmt.Errorf("%w: two series %s", errNotWindowed, lset))
			}
		}
		byHash[h] = append(byHash[h], lset)
		if agg != nil {
			if err := agg.add(lset, points); err != nil {
				return storage.ErrSeriesSet(err)
			}
			buf = points
			continue
		}
		out.series = append(out.series, windowSeries{lset: lset, points: points})
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(contextErr(err))
	}
	if agg != nil {
		out.series = agg.series()
	}
	out.warnings.Merge(set.Warnings())
	return &out
}

// seriesWindows reads a series' samples as the windows of a query's steps need them: once,
// in time order, into a buffer of which each step's window is a slice. The windows hold floats
// as the engine reads them (stale markers are not samples).
type seriesWindows struct {
	it    chunkenc.Iterator
	runs  mstorage.FloatRunIterator // it, when it reads runs of floats at once
	ended bool                      // it has nothing more
	calc  windowCalc
	// buf[lo:hi] is the current window; buf[hi:] is read and after it. dropped is how many
	// samples were dropped from buf's front: buf[i] is the series' sample numbered dropped+i.
	buf             []promql.FPoint
	lo, hi, dropped int
	// resets (rate, increase, resets), changes (changes) and irregular (deriv,
	// predict_linear: the interval changed) mark samples as they enter buf.
	resets, changes, irregular sampleMarks
	extremes                   extremes // max_over_time, min_over_time
}

func (sw *seriesWindows) reset(it chunkenc.Iterator, calc windowCalc) {
	sw.it, sw.calc, sw.ended = it, calc, false
	sw.runs, _ = it.(mstorage.FloatRunIterator)
	sw.buf, sw.lo, sw.hi, sw.dropped = sw.buf[:0], 0, 0, 0
	sw.resets.reset()
	sw.changes.reset()
	sw.irregular.reset()
	sw.extremes.reset()
}

// window returns the samples in (wmin, wmax], a window after the one before it.
func (sw *seriesWindows) window(wmin, wmax int64) ([]promql.FPoint, error) {
	// Read until a sample after wmax is in buf, or there is none.
	for !sw.ended && (len(sw.buf) == 0 || sw.buf[len(sw.buf)-1].T <= wmax) {
		if sw.runs != nil {
			if ts, vs, ok := sw.runs.NextFloats(); ok {
				from := len(sw.buf)
				sw.buf = slices.Grow(sw.buf, len(ts))
				for i, t := range ts {
					if f := vs[i]; t > wmin && !value.IsStaleNaN(f) {
						sw.buf = append(sw.buf, promql.FPoint{T: t, F: f})
					}
				}
				sw.mark(from)
				continue
			}
		}
		switch sw.it.Next() {
		case chunkenc.ValNone:
			if err := sw.it.Err(); err != nil {
				return nil, contextErr(err)
			}
			sw.ended = true
		case chunkenc.ValFloat:
			if t, f := sw.it.At(); t > wmin && !value.IsStaleNaN(f) {
				sw.buf = append(sw.buf, promql.FPoint{T: t, F: f})
				sw.mark(len(sw.buf) - 1)
			}
		default:
			return nil, fmt.Errorf("%w: a histogram sample", errNotWindowed)
		}
	}
	for sw.lo < len(sw.buf) && sw.buf[sw.lo].T <= wmin {
		sw.lo++
	}
	if sw.lo > 0 && sw.lo >= len(sw.buf)/2 {
		sw.buf = sw.buf[:copy(sw.buf, sw.buf[sw.lo:])]
		sw.hi, sw.dropped, sw.lo = max(0, sw.hi-sw.lo), sw.dropped+sw.lo, 0
	}
	sw.hi = max(sw.hi, sw.lo)
	for sw.hi < len(sw.buf) && sw.buf[sw.hi].T <= wmax {
		sw.hi++
	}
	return sw.buf[sw.lo:sw.hi], nil
}

// first and last are the numbers of the current window's first and last samples.
func (sw *seriesWindows) first() int { return sw.dropped + sw.lo }
func (sw *seriesWindows) last() int  { return sw.dropped + sw.hi - 1 }

// mark marks the samples of buf from from on against the samples before them.
func (sw *seriesWindows) mark(from int) {
	b := sw.buf
	switch {
	case sw.calc.counter() || sw.calc == calcResets:
		for k := max(from, 1); k < len(b); k++ {
			if b[k].F < b[k-1].F { // as extrapolatedRate and resets compare: NaN is no reset
				sw.resets.mark(sw.dropped + k)
			}
		}
	case sw.calc == calcChanges:
		for k := max(from, 1); k < len(b); k++ {
			// As changes compares: -0 is 0, and NaN after NaN is no change.
			if b[k].F != b[k-1].F && !(math.IsNaN(b[k].F) && math.IsNaN(b[k-1].F)) {
				sw.changes.mark(sw.dropped + k)
			}
		}
	case sw.calc.regression():
		for k := max(from, 2); k < len(b); k++ {
			if b[k].T-b[k-1].T != b[k-1].T-b[k-2].T {
				sw.irregular.mark(sw.dropped + k)
			}
		}
	}
}

// contextErr is err, or the engine's error for a query whose context ended (promql's
// contextDone) when err says that it did.
func contextErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return promql.ErrQueryTimeout("expression evaluation")
	case errors.Is(err, context.Canceled):
		return promql.ErrQueryCanceled("expression evaluation")
	}
	return err
}

// windowSet is the answers of a call, one series per input series.
type windowSet struct {
	series   []windowSeries
	i        int
	warnings annotations.Annotations
}

func (s *windowSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}
func (s *windowSet) At() storage.Series                { return &s.series[s.i-1] }
func (s *windowSet) Err() error                        { return nil }
func (s *windowSet) Warnings() annotations.Annotations { return s.warnings }

type windowSeries struct {
	lset   labels.Labels
	points []promql.FPoint
}

func (s *windowSeries) Labels() labels.Labels { return s.lset }

func (s *windowSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	wi, ok := it.(*windowIterator)
	if !ok {
		wi = &windowIterator{}
	}
	*wi = windowIterator{points: s.points, i: -1}
	return wi
}

// windowIterator walks a call's answers.
type windowIterator struct {
	points []promql.FPoint
	i      int
}

func (it *windowIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.points) {
		it.i = len(it.points)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *windowIterator) Seek(t int64) chunkenc.ValueType {
	if it.i >= len(it.points) {
		return chunkenc.ValNone
	}
	if it.i >= 0 && it.points[it.i].T >= t {
		return chunkenc.ValFloat
	}
	from := max(it.i, 0)
	j, _ := slices.BinarySearchFunc(it.points[from:], t, func(p promql.FPoint, t int64) int {
		switch {
		case p.T < t:
			return -1
		case p.T > t:
			return 1
		}
		return 0
	})
	it.i = from + j
	if it.i >= len(it.points) {
		return chunkenc.ValNone
	}
	return chunkenc.ValFloat
}

func (it *windowIterator) At() (int64, float64) { p := it.points[it.i]; return p.T, p.F }
func (it *windowIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.points[it.i].T, nil
}
func (it *windowIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.points[it.i].T, nil
}
func (it *windowIterator) AtT() int64  { return it.points[it.i].T }
func (it *windowIterator) AtST() int64 { return 0 }
func (it *windowIterator) Err() error  { return nil }

// windowQuery is a range query evaluated by the windows engines, and by Prometheus's engine as
// it is where that fails with errNotWindowed.
type windowQuery struct {
	windows, plain promql.Query
	ran            promql.Query // the one that answered
}

func (q *windowQuery) Exec(ctx context.Context) *promql.Result {
	q.ran = q.windows
	res := q.windows.Exec(ctx)
	if res.Err != nil && errors.Is(res.Err, errNotWindowed) {
		q.ran = q.plain
		return q.plain.Exec(ctx)
	}
	return res
}

func (q *windowQuery) Close() {
	q.windows.Close()
	q.plain.Close()
}

func (q *windowQuery) Statement() parser.Statement { return q.plain.Statement() }

func (q *windowQuery) Stats() *stats.Statistics {
	if q.ran == nil {
		return q.plain.Stats()
	}
	return q.ran.Stats()
}

func (q *windowQuery) Cancel() {
	q.windows.Cancel()
	q.plain.Cancel()
}

func (q *windowQuery) String() string { return q.plain.String() }

var (
	_ parser.Parser     = windowParser{}
	_ storage.Queryable = windowQueryable{}
	_ promql.Query      = (*windowQuery)(nil)
	_ chunkenc.Iterator = (*windowIterator)(nil)
	_ storage.SeriesSet = (*windowSet)(nil)
)
