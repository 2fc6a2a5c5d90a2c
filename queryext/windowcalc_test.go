package queryext

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// TestCounterRateMatchesPrometheus compares counterRate with Prometheus's rate and increase on
// random windows without counter resets: regular and irregular spacing, windows that start
// and end away from the range's bounds, values from zero, negative, NaN and infinite, ranges
// of a millisecond to a day, offsets. The answers must be the same bits.
func TestCounterRateMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := 0
	for range 20000 {
		rangeMs := []int64{1, 999, 15_000, 60_000, 300_000, 3_600_000, 86_400_000}[rng.IntN(7)]
		off := []int64{0, 0, 60_000, -30_000, 1}[rng.IntN(5)]
		ts := int64(1_700_000_000_000) + rng.Int64N(1_000_000)
		wmin, wmax := ts-off-rangeMs, ts-off
		// Sample times in (wmin, wmax]: spread evenly, with jitter, or bunched at one end.
		n := 2 + rng.IntN(30)
		var times []int64
		for t := wmin + 1 + rng.Int64N(max(1, rangeMs/4)); t <= wmax && len(times) < n; {
			times = append(times, t)
			t += 1 + rng.Int64N(max(1, 2*rangeMs/int64(n)))
		}
		if len(times) < 2 {
			continue
		}
		v := []float64{0, 1e-9, 5, 1e6, 1e300, -50}[rng.IntN(6)]
		w := make([]promql.FPoint, len(times))
		for i, t := range times {
			switch rng.IntN(40) {
			case 0:
				v = math.NaN() // NaN is no reset, and stays in the difference
			case 1:
				v = math.Inf(1)
			default:
				if !math.IsNaN(v) {
					v += []float64{0, 1, 0.1, rng.Float64() * 1000}[rng.IntN(4)]
				}
			}
			w[i] = promql.FPoint{T: t, F: v}
		}
		if hasReset(w) {
			continue
		}
		cases++
		for _, name := range []string{"rate", "increase"} {
			want := prometheusRate(t, name, w, ts, rangeMs, off)
			got := counterRate(w, ts, rangeMs, off, name == "rate")
			if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s over %d ms offset %d ms at %d of %v: got %v, Prometheus %v", name, rangeMs, off, ts, w, got, want)
			}
		}
	}
	if cases < 10000 {
		t.Fatalf("only %d windows without resets", cases)
	}
}

func hasReset(w []promql.FPoint) bool {
	for i := 1; i < len(w); i++ {
		if w[i].F < w[i-1].F {
			return true
		}
	}
	return false
}

// prometheusRate is Prometheus's rate or increase of the window w at ts, as the engine calls it.
func prometheusRate(t *testing.T, name string, w []promql.FPoint, ts, rangeMs, off int64) float64 {
	t.Helper()
	ms := &parser.MatrixSelector{
		VectorSelector: &parser.VectorSelector{Name: "x_total", Offset: time.Duration(off) * time.Millisecond},
		Range:          time.Duration(rangeMs) * time.Millisecond,
	}
	in := promql.Matrix{{Metric: labels.FromStrings("__name__", "x_total"), Floats: w}}
	enh := &promql.EvalNodeHelper{Ts: ts}
	vec, _ := promql.FunctionCalls[name](nil, in, parser.Expressions{ms}, enh)
	if len(vec) != 1 {
		t.Fatalf("%s of %v: %d answers", name, w, len(vec))
	}
	return vec[0].F
}

// TestSampleMarks checks which windows of a series hold a marked sample, a window's first
// sample not counting (what is marked is a sample against the one before it).
func TestSampleMarks(t *testing.T) {
	var m sampleMarks
	m.mark(2)
	m.mark(5)
	for _, c := range []struct {
		lo, hi int
		want   bool
	}{{0, 1, false}, {0, 2, true}, {1, 2, true}, {1, 7, true}, {2, 4, false}, {2, 5, true}, {5, 7, false}} {
		if got := m.within(c.lo, c.hi); got != c.want {
			t.Errorf("window %d..%d: marked %v, want %v", c.lo, c.hi, got, c.want)
		}
	}
}

// TestInstantRateMatchesPrometheus compares instantRate with Prometheus's irate and idelta on
// the last two samples of random windows: rising, falling (a reset for irate), equal, NaN and
// infinite values, intervals of a millisecond to hours.
func TestInstantRateMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, -1, 1, 2.5, 1e300, -1e-300, math.NaN(), math.Inf(1), math.Inf(-1)}
	for range 20000 {
		n := 2 + rng.IntN(5)
		w := make([]promql.FPoint, n)
		ts := int64(1_700_000_000_000)
		for i := range w {
			ts += 1 + rng.Int64N([]int64{1, 1000, 15_000, 7_200_000}[rng.IntN(4)])
			f := vals[rng.IntN(len(vals))]
			if rng.IntN(2) == 0 {
				f = rng.NormFloat64() * 1000
			}
			w[i] = promql.FPoint{T: ts, F: f}
		}
		for _, name := range []string{"irate", "idelta"} {
			in := promql.Matrix{{Metric: labels.FromStrings("__name__", "x"), Floats: w}}
			ms := &parser.MatrixSelector{VectorSelector: &parser.VectorSelector{Name: "x"}, Range: time.Hour}
			vec, _ := promql.FunctionCalls[name](nil, in, parser.Expressions{ms}, &promql.EvalNodeHelper{Ts: ts})
			if len(vec) != 1 {
				t.Fatalf("%s of %v: %d answers", name, w, len(vec))
			}
			got, want := instantRate(w, name == "irate"), vec[0].F
			if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s of %v: got %v, Prometheus %v", name, w, got, want)
			}
		}
	}
}

// TestRegressionMatchesPrometheus compares deriv and predict_linear computed by regression,
// with the sums of x from one xSumsCache for all windows, with Prometheus's functions on random
// windows: regular (a few shapes, seen again with other values) and irregular, constant values,
// NaN and infinities, intercept times before, inside and after the window.
func TestRegressionMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	shapes := xSumsCache{}
	hits := 0
	for range 20000 {
		n := 2 + rng.IntN(40)
		d := []int64{1, 15_000, 60_000, 10_000}[rng.IntN(4)]
		regular := rng.IntN(3) > 0
		w := make([]promql.FPoint, n)
		ts := int64(1_700_000_000_000) + rng.Int64N(4)*5_000
		y := rng.NormFloat64() * 100
		for i := range w {
			if i > 0 {
				ts += d
				if !regular {
					ts += rng.Int64N(3)
				}
			}
			switch rng.IntN(50) {
			case 0:
				y = math.NaN()
			case 1:
				y = math.Inf(-1)
			default:
				if rng.IntN(4) > 0 {
					y += rng.NormFloat64()
				}
			}
			w[i] = promql.FPoint{T: ts, F: y}
		}
		if rng.IntN(10) == 0 {
			for i := range w {
				w[i].F = w[0].F // constant
			}
		}
		regularTimes := true
		for i := 2; i < n; i++ {
			regularTimes = regularTimes && w[i].T-w[i-1].T == w[1].T-w[0].T
		}
		step := w[n-1].T + rng.Int64N(3)*7_000
		in := promql.Matrix{{Metric: labels.FromStrings("__name__", "x"), Floats: w}}
		ms := &parser.MatrixSelector{VectorSelector: &parser.VectorSelector{Name: "x"}, Range: time.Hour}
		for _, name := range []string{"deriv", "predict_linear"} {
			at, numbers := w[0].T, []promql.Vector(nil)
			dur := float64(rng.IntN(7200) - 600)
			if name == "predict_linear" {
				at, numbers = step, []promql.Vector{{promql.Sample{F: dur}}}
			}
			before := len(shapes)
			slope, intercept := regression(w, at, shapes.get(w, at, regularTimes))
			if regularTimes && len(shapes) == before {
				hits++
			}
			got := slope
			if name == "predict_linear" {
				got = slope*dur + intercept
			}
			vec, _ := promql.FunctionCalls[name](numbers, in, parser.Expressions{ms, &parser.NumberLiteral{Val: dur}}, &promql.EvalNodeHelper{Ts: step})
			if len(vec) != 1 {
				t.Fatalf("%s of %v: %d answers", name, w, len(vec))
			}
			if want := vec[0].F; math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s of %v at %d: got %v, Prometheus %v", name, w, step, got, want)
			}
		}
	}
	if hits < 1000 {
		t.Fatalf("the sums of x came from the cache %d times", hits)
	}
}

func BenchmarkRegression(b *testing.B) {
	w := make([]promql.FPoint, 60)
	for i := range w {
		w[i] = promql.FPoint{T: 1_700_000_000_000 + int64(i)*15_000, F: 40 + float64(i%7)*0.25}
	}
	xs := sumsOfX(w, w[0].T)
	b.ResetTimer()
	var s float64
	for range b.N {
		slope, _ := regression(w, w[0].T, xs)
		s += slope
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(w)), "ns/sample")
}

// TestOverTimeMatchesPrometheus compares sumOverTime and avgOverTime with Prometheus's
// sum_over_time and avg_over_time on random windows: small and huge values, NaN and
// infinities, sums that overflow (avg_over_time then goes on incrementally, and avgOverTime
// declines).
func TestOverTimeMatchesPrometheus(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	declined := 0
	for range 20000 {
		w := make([]promql.FPoint, 1+rng.IntN(60))
		scale := []float64{1, 1e-300, 1e15, 1e306}[rng.IntN(4)]
		for i := range w {
			f := rng.NormFloat64() * scale
			switch rng.IntN(80) {
			case 0:
				f = math.NaN()
			case 1:
				f = math.Inf(1 - 2*rng.IntN(2))
			}
			w[i] = promql.FPoint{T: int64(i) * 15_000, F: f}
		}
		in := promql.Matrix{{Metric: labels.FromStrings("__name__", "x"), Floats: w}}
		ms := &parser.MatrixSelector{VectorSelector: &parser.VectorSelector{Name: "x"}, Range: time.Hour}
		for _, name := range []string{"sum_over_time", "avg_over_time"} {
			vec, _ := promql.FunctionCalls[name](nil, in, parser.Expressions{ms}, &promql.EvalNodeHelper{Ts: w[len(w)-1].T})
			if len(vec) != 1 {
				t.Fatalf("%s of %v: %d answers", name, w, len(vec))
			}
			got, ok := sumOverTime(w), true
			if name == "avg_over_time" {
				if got, ok = avgOverTime(w); !ok {
					declined++
					continue
				}
			}
			if want := vec[0].F; math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
				t.Fatalf("%s of %v: got %v, Prometheus %v", name, w, got, want)
			}
		}
	}
	if declined == 0 || declined > 5000 {
		t.Fatalf("avgOverTime declined %d windows", declined)
	}
}

// TestWindowFunctionsOnSeries drives seriesWindows over random series, with windows of random
// range at random steps (some windows empty, some longer than the buffer keeps), and compares
// every function windowcalc.go computes with Prometheus's on each window: max_over_time and
// min_over_time (the monotonic queue, over equal values, -0 and 0, NaN and infinities),
// stddev_over_time and stdvar_over_time, sum_over_time and avg_over_time, resets and changes
// (the marks counted).
func TestWindowFunctionsOnSeries(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	vals := []float64{0, math.Copysign(0, -1), 1, 1, 2, -3, math.NaN(), math.Inf(1), math.Inf(-1), 1e300}
	funcs := []windowCalc{calcMaxOverTime, calcMinOverTime, calcStddevOverTime, calcStdvarOverTime, calcSumOverTime, calcAvgOverTime, calcResets, calcChanges}
	names := map[windowCalc]string{calcMaxOverTime: "max_over_time", calcMinOverTime: "min_over_time",
		calcStddevOverTime: "stddev_over_time", calcStdvarOverTime: "stdvar_over_time",
		calcSumOverTime: "sum_over_time", calcAvgOverTime: "avg_over_time", calcResets: "resets", calcChanges: "changes"}
	windows := 0
	for round := range 300 {
		var series []promql.FPoint
		ts := int64(0)
		for range 50 + rng.IntN(400) {
			ts += 1 + rng.Int64N(30_000)
			f := vals[rng.IntN(len(vals))]
			if rng.IntN(2) == 0 {
				f = float64(rng.IntN(20)) // many equal values
			}
			series = append(series, promql.FPoint{T: ts, F: f})
		}
		calc := funcs[round%len(funcs)]
		rangeMs, step := 1+rng.Int64N(600_000), 1+rng.Int64N(120_000)
		var sw seriesWindows
		sw.reset(&windowIterator{points: series, i: -1}, calc) // one sample at a time
		for at := int64(0); at <= ts+rangeMs; at += step {
			w, err := sw.window(at-rangeMs, at)
			if err != nil {
				t.Fatal(err)
			}
			if len(w) == 0 {
				continue
			}
			windows++
			var got float64
			switch calc {
			case calcMaxOverTime, calcMinOverTime:
				got = sw.extremes.answer(sw.buf, sw.lo, sw.hi, sw.dropped, calc == calcMaxOverTime)
			case calcResets:
				got = float64(sw.resets.count(sw.first(), sw.last()))
			case calcChanges:
				got = float64(sw.changes.count(sw.first(), sw.last()))
			case calcStddevOverTime:
				got = math.Sqrt(varianceOverTime(w))
			case calcStdvarOverTime:
				got = varianceOverTime(w)
			case calcSumOverTime:
				got = sumOverTime(w)
			case calcAvgOverTime:
				var ok bool
				if got, ok = avgOverTime(w); !ok {
					continue
				}
			}
			in := promql.Matrix{{Metric: labels.FromStrings("__name__", "x"), Floats: w}}
			ms := &parser.MatrixSelector{VectorSelector: &parser.VectorSelector{Name: "x"}, Range: time.Duration(rangeMs) * time.Millisecond}
			vec, _ := promql.FunctionCalls[names[calc]](nil, in, parser.Expressions{ms}, &promql.EvalNodeHelper{Ts: at})
			if len(vec) != 1 {
				t.Fatalf("%s of %v: %d answers", names[calc], w, len(vec))
			}
			// The same bits, -0 and 0 apart; a NaN's payload aside (floatsAgree).
			if want := vec[0].F; !floatsAgree(got, want, 0) {
				t.Fatalf("%s over %d ms at %d of %v: got %v (%x), Prometheus %v (%x)", names[calc], rangeMs, at, w, got, math.Float64bits(got), want, math.Float64bits(want))
			}
		}
	}
	if windows < 10000 {
		t.Fatalf("only %d windows", windows)
	}
}
