package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/schema"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	mstorage "github.com/metricstor/metricstor/storage"
)

// A dashboard's range query mostly aggregates: sum by (instance) (rate(x[5m])), count(up).
// The engine evaluates the argument into a matrix of every input series at every step, then
// walks it step by step across all series (a cache miss per series and step: for 2,000 series
// at 1,440 steps a tenth of count({job="x"})'s CPU was that walk alone) and reads each value
// back through an iterator per series and step. Here the aggregations that only add, count or
// compare floats are computed beside the windows: each input series' answers, as the windows
// (or, for a plain selector, the lookback at each step) give them, are folded into their
// group's value at each step as they are computed, in the order the engine folds them (the
// input series in the order the store returns them), by the same operations as the engine's
// aggregation. The selector standing for the aggregation (windowSelector) then returns one
// series per group, with the group's labels as the engine gives them, and the engine reads
// the aggregation's answer from it at each step.
//
// What the engine's aggregation does beyond that is left to it: an average whose sum
// overflows (the engine goes on with an incremental mean) and native histograms make the
// Select fail with errNotWindowed, and Prometheus's engine evaluates the query as it is.

// windowAggs are the aggregations evaluated beside the windows: floats added, counted or
// compared, and quantile with a number from 0 to 1 (its values sorted and interpolated as the
// engine's quantile does them, in the engine's order: quantileOf).
var windowAggs = map[string]parser.ItemType{
	"sum": parser.SUM, "avg": parser.AVG, "count": parser.COUNT,
	"min": parser.MIN, "max": parser.MAX, "group": parser.GROUP, "quantile": parser.QUANTILE,
}

// aggregatesOnWindows reports whether a, an argument of the function named parent ("" for
// none), is evaluated beside the windows: one of windowAggs over a call evaluated on windows
// or over a plain selector read at the query's steps (lookbackSelector), and not the argument
// of a function that reads its argument's expression (see onWindows).
func aggregatesOnWindows(a *parser.AggregateExpr, parent string) bool {
	switch parent {
	case "absent", "absent_over_time", "timestamp", "start_timestamp", "info":
		return false
	}
	if _, ok := windowAggs[a.Op.String()]; !ok {
		return false
	}
	if a.Op == parser.QUANTILE {
		// A number the engine does not warn about (it does for one outside 0..1, or NaN).
		q, ok := unparen(a.Param).(*parser.NumberLiteral)
		if !ok || !(q.Val >= 0 && q.Val <= 1) {
			return false
		}
	} else if a.Param != nil {
		return false
	}
	switch in := unparen(a.Expr).(type) {
	case *parser.Call:
		return onWindows(in, "")
	case *parser.VectorSelector:
		return lookbackSelector(in)
	}
	return false
}

// lookbackSelector reports whether vs is read as the step grid reads it: the newest sample
// within the lookback delta at each step, with no offset or @ (the store thins it to what the
// steps read), not smoothed or anchored.
func lookbackSelector(vs *parser.VectorSelector) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == windowLabel {
			return false
		}
	}
	return vs.Timestamp == nil && vs.StartOrEnd == 0 && !vs.Anchored && !vs.Smoothed &&
		vs.OriginalOffsetExpr == nil && vs.OriginalOffset == 0
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// aggSpecFields are the fields of windowLabel's value that say an aggregation: its operator
// (with quantile's number after a colon), by or without, and its grouping labels (escaped,
// comma separated).
func aggSpecFields(a *parser.AggregateExpr) []string {
	grouping := make([]string, len(a.Grouping))
	for i, g := range a.Grouping {
		grouping[i] = url.QueryEscape(g)
	}
	mode := "by"
	if a.Without {
		mode = "without"
	}
	op := a.Op.String()
	if a.Op == parser.QUANTILE {
		op += ":" + strconv.FormatFloat(unparen(a.Param).(*parser.NumberLiteral).Val, 'g', -1, 64)
	}
	return []string{op, mode, strings.Join(grouping, ",")}
}

// windowAgg is an aggregation as its selector says it.
type windowAgg struct {
	op      parser.ItemType
	without bool
	// grouping is sorted, and for without has the metadata labels, as the engine has them.
	grouping []string
	q        float64 // quantile's
}

func parseAggFields(f []string) (*windowAgg, bool) {
	name, param, hasParam := strings.Cut(f[0], ":")
	op, ok := windowAggs[name]
	if !ok || (f[1] != "by" && f[1] != "without") || hasParam != (op == parser.QUANTILE) {
		return nil, false
	}
	agg := &windowAgg{op: op, without: f[1] == "without"}
	if hasParam {
		q, err := strconv.ParseFloat(param, 64)
		if err != nil || !(q >= 0 && q <= 1) {
			return nil, false
		}
		agg.q = q
	}
	if f[2] != "" {
		for _, g := range strings.Split(f[2], ",") {
			name, err := url.QueryUnescape(g)
			if err != nil {
				return nil, false
			}
			agg.grouping = append(agg.grouping, name)
		}
	}
	if agg.without {
		agg.grouping = append(agg.grouping, model.MetricNameLabel, model.MetricTypeLabel, model.MetricUnitLabel)
	}
	slices.Sort(agg.grouping)
	return agg, true
}

// aggregator folds the input series' answers into their groups, step by step.
type aggregator struct {
	agg   *windowAgg
	g     mstorage.StepGrid
	steps int
	// limit is the most samples the groups' values may weigh (groups times steps, each as
	// many samples as its bytes make), as a part of the query may hold: a sum without one
	// label of many series has nearly as many groups as series.
	limit   int
	held    int // quantile's values held
	groups  []aggGroup
	byKey   map[uint64]int // groups by the engine's grouping key
	buf     []byte
	builder *labels.Builder
}

type aggGroup struct {
	lset labels.Labels
	at   []aggValue // by step
	// values holds quantile's values by step, in the order the engine collects them.
	values [][]promql.FPoint
}

// aggValue is a group's value at a step: the fields of the engine's groupedAggregation that
// floats use. count is at least 1 once the group has a value at the step (seen).
type aggValue struct {
	value, kahanC, count float64
}

// aggValueSamples is what an aggValue weighs in samples (promql.FPoint) held.
const aggValueSamples = float64(unsafe.Sizeof(aggValue{})) / float64(unsafe.Sizeof(promql.FPoint{}))

func newAggregator(agg *windowAgg, g mstorage.StepGrid, limit int) *aggregator {
	return &aggregator{
		agg: agg, g: g, steps: int((g.End-g.Start)/g.Step) + 1, limit: limit,
		byKey: map[uint64]int{}, builder: labels.NewBuilder(labels.EmptyLabels()),
	}
}

// add folds the answers of the series labelled lset (points at the grid's steps, stale
// markers where there is none) into its group. It fails with errNotWindowed where the engine
// would go on in a way not written here.
func (a *aggregator) add(lset labels.Labels, points []promql.FPoint) error {
	var key uint64
	if a.agg.without {
		key, a.buf = lset.HashWithoutLabels(a.buf, a.agg.grouping...)
	} else if len(a.agg.grouping) > 0 {
		key, a.buf = lset.HashForLabels(a.buf, a.agg.grouping...)
	}
	gi, ok := a.byKey[key]
	if !ok {
		if held := float64((len(a.groups)+1)*a.steps) * aggValueSamples; held > float64(a.limit) {
			return fmt.Errorf("%w: more than %d answers", errNotWindowed, a.limit)
		}
		gi = len(a.groups)
		a.byKey[key] = gi
		gr := aggGroup{lset: a.groupLabels(lset)}
		if a.agg.op == parser.QUANTILE {
			gr.values = make([][]promql.FPoint, a.steps) // as heavy as an aggValue a step
		} else {
			gr.at = make([]aggValue, a.steps)
		}
		a.groups = append(a.groups, gr)
	}
	if a.agg.op == parser.QUANTILE {
		values := a.groups[gi].values
		for _, p := range points {
			if !value.IsStaleNaN(p.F) {
				i := (p.T - a.g.Start) / a.g.Step
				values[i] = append(values[i], promql.FPoint{F: p.F})
				a.held++
			}
		}
		if held := float64(len(a.groups)*a.steps)*aggValueSamples + float64(a.held); held > float64(a.limit) {
			return fmt.Errorf("%w: more than %d answers", errNotWindowed, a.limit)
		}
		return nil
	}
	at := a.groups[gi].at
	for _, p := range points {
		f := p.F
		if value.IsStaleNaN(f) {
			continue
		}
		v := &at[(p.T-a.g.Start)/a.g.Step]
		if v.count == 0 {
			*v = aggValue{value: f, count: 1}
			if a.agg.op == parser.GROUP {
				v.value = 1
			}
			continue
		}
		switch a.agg.op {
		case parser.SUM:
			v.value, v.kahanC = kahanInc(f, v.value, v.kahanC)
		case parser.AVG:
			v.count++
			sum, c := kahanInc(f, v.value, v.kahanC)
			if math.IsInf(sum, 0) {
				// The engine goes on with an incremental mean from here.
				return fmt.Errorf("%w: an average whose sum overflows", errNotWindowed)
			}
			v.value, v.kahanC = sum, c
		case parser.COUNT:
			v.count++
		case parser.MIN:
			if v.value > f || math.IsNaN(v.value) {
				v.value = f
			}
		case parser.MAX:
			if v.value < f || math.IsNaN(v.value) {
				v.value = f
			}
		}
	}
	return nil
}

// groupLabels are the labels of the group of a series labelled lset, as the engine's
// generateGroupingLabels gives them.
func (a *aggregator) groupLabels(lset labels.Labels) labels.Labels {
	switch {
	case a.agg.without:
		a.builder.Reset(lset)
		a.builder.Del(a.agg.grouping...)
		schema.Metadata{}.SetToLabels(a.builder)
		return a.builder.Labels()
	case len(a.agg.grouping) > 0:
		a.builder.Reset(lset)
		a.builder.Keep(a.agg.grouping...)
		return a.builder.Labels()
	}
	return labels.EmptyLabels()
}

// valuesByValue orders floats as the engine's quantile orders its samples (NaN first, then
// ascending), with the same Less and Swap, so that sort.Sort moves them as it moves the
// engine's samples: the same permutation, equal values such as 0 and -0 included, and so the
// same quantile to the bit. Sorting floats rather than the engine's samples (a struct with
// labels and pointers) spares their copies and write barriers: half of a quantile
// aggregation's CPU over a day's steps.
type valuesByValue []float64

func (v valuesByValue) Len() int           { return len(v) }
func (v valuesByValue) Less(i, j int) bool { return math.IsNaN(v[i]) || v[i] < v[j] }
func (v valuesByValue) Swap(i, j int)      { v[i], v[j] = v[j], v[i] }

// quantileOf is the engine's quantile of values, which it sorts: the q-quantile interpolated
// between the two values around rank q*(n-1); NaN for no values or a NaN q, -Inf and +Inf for
// a q below 0 or above 1. TestQuantileOfMatchesEngine compares it with the engine's.
func quantileOf(q float64, values valuesByValue) float64 {
	switch {
	case len(values) == 0 || math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(+1)
	}
	sort.Sort(values)
	n := float64(len(values))
	rank := q * (n - 1)
	lo := math.Max(0, math.Floor(rank))
	hi := math.Min(n-1, lo+1)
	weight := rank - math.Floor(rank)
	if weight == 0 {
		return values[int(lo)]
	}
	return values[int(lo)]*(1-weight) + values[int(hi)]*weight
}

// series returns the groups' answers, in the order the engine has its groups (that of their
// first series), those without any left out as the engine leaves them out.
func (a *aggregator) series() []windowSeries {
	out := make([]windowSeries, 0, len(a.groups))
	var scratch valuesByValue
	for _, gr := range a.groups {
		if a.agg.op == parser.QUANTILE {
			// The group's values at each step, in the order the engine collects them.
			gr.at = make([]aggValue, a.steps)
			for i, values := range gr.values {
				if len(values) > 0 {
					scratch = scratch[:0]
					for _, p := range values {
						scratch = append(scratch, p.F)
					}
					gr.at[i] = aggValue{value: quantileOf(a.agg.q, scratch), count: 1}
				}
			}
		}
		var points []promql.FPoint
		for i, v := range gr.at {
			ts := a.g.Start + int64(i)*a.g.Step
			if v.count == 0 {
				if len(points) > 0 && !value.IsStaleNaN(points[len(points)-1].F) {
					points = append(points, promql.FPoint{T: ts, F: math.Float64frombits(value.StaleNaN)})
				}
				continue
			}
			f := v.value
			switch a.agg.op {
			case parser.SUM:
				f += v.kahanC
			case parser.AVG:
				f = v.value/v.count + v.kahanC/v.count
			case parser.COUNT:
				f = v.count
			}
			if points == nil {
				points = make([]promql.FPoint, 0, len(gr.at)-i)
			}
			points = append(points, promql.FPoint{T: ts, F: f})
		}
		if len(points) > 0 {
			out = append(out, windowSeries{lset: gr.lset, points: points})
		}
	}
	return out
}

// lookbackPoints appends to points what the engine reads from the series of it at each step
// of g: the newest sample at or before the step, unless it is older than the lookback delta
// or a stale marker (then nothing). A histogram sample fails with errNotWindowed.
func lookbackPoints(points []promql.FPoint, it chunkenc.Iterator, g mstorage.StepGrid) ([]promql.FPoint, error) {
	var (
		t, nextT int64
		f        float64
		have     bool
	)
	vt := it.Next()
	if vt != chunkenc.ValNone {
		nextT = it.AtT()
	}
	for ts := g.Start; ts <= g.End; ts += g.Step {
		for vt != chunkenc.ValNone && nextT <= ts {
			if vt != chunkenc.ValFloat {
				return points, fmt.Errorf("%w: a histogram sample", errNotWindowed)
			}
			t, f = it.At()
			have = true
			if vt = it.Next(); vt != chunkenc.ValNone {
				nextT = it.AtT()
			}
		}
		if have && t > ts-g.Lookback && !value.IsStaleNaN(f) {
			points = append(points, promql.FPoint{T: ts, F: f})
		}
	}
	return points, it.Err()
}
