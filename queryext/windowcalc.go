package queryext

import (
	"math"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// Functions over windows computed here rather than by Prometheus's functions, where that costs
// less and gives the same float, bit for bit: the same operations on the same values in the
// same order (Prometheus v0.316.0's promql/functions.go). TestCounterRateMatchesPrometheus and
// the tests beside it compare each with Prometheus's function on random windows, and
// TestWindowsMatchPrometheus and TestWindowsPromQLScripts whole queries with the engine's.

// windowCalc is how a function's windows are computed where not by Prometheus's function.
type windowCalc int

const (
	byFunction windowCalc = iota
	calcRate
	calcIncrease
	calcIrate
	calcIdelta
	calcDeriv
	calcPredictLinear
	calcSumOverTime
	calcAvgOverTime
	calcStddevOverTime
	calcStdvarOverTime
	calcMaxOverTime
	calcMinOverTime
	calcResets
	calcChanges
)

var windowCalcs = map[string]windowCalc{
	"rate": calcRate, "increase": calcIncrease, "irate": calcIrate, "idelta": calcIdelta,
	"deriv": calcDeriv, "predict_linear": calcPredictLinear,
	"sum_over_time": calcSumOverTime, "avg_over_time": calcAvgOverTime,
	"stddev_over_time": calcStddevOverTime, "stdvar_over_time": calcStdvarOverTime,
	"max_over_time": calcMaxOverTime, "min_over_time": calcMinOverTime,
	"resets": calcResets, "changes": calcChanges,
}

func (c windowCalc) counter() bool    { return c == calcRate || c == calcIncrease }
func (c windowCalc) instant() bool    { return c == calcIrate || c == calcIdelta }
func (c windowCalc) regression() bool { return c == calcDeriv || c == calcPredictLinear }
func (c windowCalc) extreme() bool    { return c == calcMaxOverTime || c == calcMinOverTime }

// rate and increase: Prometheus's extrapolatedRate walks the whole window at every step to
// find counter resets, and with windows much longer than the step (a 5m range at 15 s is 20
// samples, increase over 1h is 240) that walk is most of what a query of rate costs. Resets are rare and found here once per sample, as a sample enters the buffer
// (sampleMarks); a window that holds none is computed by counterRate in O(1), a window that
// holds one is handed to Prometheus's function as any other.

// sampleMarks are samples of a series' window buffer noted as they enter it (a counter reset,
// a change of interval), by their number in the series (the buffer's index plus what was
// dropped from its front before), in order.
type sampleMarks struct {
	at    []int
	first int // at[first:] may still be in a window
	end   int // at[:end] are up to the last window's end (count)
}

func (m *sampleMarks) mark(n int) { m.at = append(m.at, n) }

// within reports whether a sample numbered lo+1 to hi is marked. The windows move forward
// only: marks before lo+1 are forgotten.
func (m *sampleMarks) within(lo, hi int) bool {
	for m.first < len(m.at) && m.at[m.first] <= lo {
		m.first++
	}
	return m.first < len(m.at) && m.at[m.first] <= hi
}

// count returns how many samples numbered lo+1 to hi are marked (resets and changes count
// them, each window in constant time); lo and hi only grow from call to call.
func (m *sampleMarks) count(lo, hi int) int {
	for m.first < len(m.at) && m.at[m.first] <= lo {
		m.first++
	}
	m.end = max(m.end, m.first)
	for m.end < len(m.at) && m.at[m.end] <= hi {
		m.end++
	}
	return m.end - m.first
}

func (m *sampleMarks) reset() { m.at, m.first, m.end = m.at[:0], 0, 0 }

// counterRate is what extrapolatedRate (promql/functions.go of Prometheus v0.316.0) returns for
// rate (perSecond) or increase of w, the window of the step at ts of a range selector with
// range rng and offset off (milliseconds), when w holds two floats or more, no counter reset
// and no start timestamps: the same operations on the same values in the same order, so the
// same float, bit for bit. TestWindowsMatchPrometheus and TestWindowsPromQLScripts compare it
// with the engine's answers.
func counterRate(w []promql.FPoint, ts, rng, off int64, perSecond bool) float64 {
	first, last := w[0], w[len(w)-1]
	rangeStart, rangeEnd := ts-(rng+off), ts-off
	result := last.F - first.F

	durationToStart := float64(first.T-rangeStart) / 1000
	durationToEnd := float64(rangeEnd-last.T) / 1000
	sampledInterval := float64(last.T-first.T) / 1000
	averageDurationBetweenSamples := sampledInterval / float64(len(w)-1)
	extrapolationThreshold := averageDurationBetweenSamples * 1.1

	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	// A counter is not extrapolated to below zero.
	durationToZero := durationToStart
	if result > 0 && first.F >= 0 {
		durationToZero = sampledInterval * (first.F / result)
	}
	if durationToZero < durationToStart {
		durationToStart = durationToZero
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}

	factor := 1.0
	if sampledInterval != 0 {
		factor = (sampledInterval + durationToStart + durationToEnd) / sampledInterval
	}
	if perSecond {
		factor /= (time.Duration(rng) * time.Millisecond).Seconds()
	}
	return result * factor
}

// instantRate is what instantValue (promql/functions.go of Prometheus v0.316.0) returns for irate
// (perSecond) or idelta of w, a window of two floats or more with no start timestamps and its
// last two at different times (as the store keeps them; the engine answers nothing else): from
// its last two samples. Prometheus's function copies them into a slice of samples with their
// labels first, which costs more than the arithmetic.
func instantRate(w []promql.FPoint, perSecond bool) float64 {
	prev, last := w[len(w)-2], w[len(w)-1]
	result := last.F
	if !perSecond || !(last.F < prev.F) {
		// A gauge, or a counter without a reset (NaN is none); after a reset, the last value.
		result = last.F - prev.F
	}
	if perSecond {
		result /= float64(last.T-prev.T) / 1000
	}
	return result
}

// deriv and predict_linear fit a line to each window (linearRegression) with four compensated
// sums a sample: of x (the sample's time from the intercept time), x², y and xy. Scrapes are
// mostly regular, and where a window's times are too (one interval between all of them), the
// sums of x and x² depend only on the number of samples, the interval and the first sample's
// time from the intercept time: they are computed once for each such shape (xSumsCache), and
// only the sums of y and xy for each window.

// xSums are linearRegression's sums of x and x², with their compensation terms.
type xSums struct{ sumX, cX, sumX2, cX2 float64 }

// xShape is a regular window's times as they enter the sums of x: n samples d apart, the first
// x0 after the intercept time (milliseconds).
type xShape struct {
	n     int
	d, x0 int64
}

// xSumsCache holds the sums of regular windows' shapes; it stops adding past maxShapes (a
// query's windows come in a few shapes, or in as many as it has steps).
type xSumsCache map[xShape]xSums

const maxShapes = 256

// get returns the sums of x and x² of w about interceptTime, from the cache when w is regular
// (and was seen before).
func (c xSumsCache) get(w []promql.FPoint, interceptTime int64, regular bool) xSums {
	if !regular {
		return sumsOfX(w, interceptTime)
	}
	k := xShape{n: len(w), d: w[1].T - w[0].T, x0: w[0].T - interceptTime}
	if s, ok := c[k]; ok {
		return s
	}
	s := sumsOfX(w, interceptTime)
	if len(c) < maxShapes {
		c[k] = s
	}
	return s
}

// sumsOfX is the first half of linearRegression's loop.
func sumsOfX(w []promql.FPoint, interceptTime int64) xSums {
	var s xSums
	for _, p := range w {
		x := float64(p.T-interceptTime) / 1e3
		s.sumX, s.cX = kahanInc(x, s.sumX, s.cX)
		s.sumX2, s.cX2 = kahanInc(x*x, s.sumX2, s.cX2)
	}
	return s
}

// regression is what linearRegression (promql/functions.go of Prometheus v0.316.0) returns for
// w, two floats or more, about interceptTime, given xs, the sums of x and x² of w (sumsOfX):
// its sums of y and xy, each with the same compensated additions (kahansum.Inc) of the same
// terms in the same order, and the same arithmetic after them, so the same floats, bit for bit.
func regression(w []promql.FPoint, interceptTime int64, xs xSums) (slope, intercept float64) {
	var (
		n          float64
		sumY, cY   float64
		sumXY, cXY float64
		initY      = w[0].F
		constY     = true
	)
	for i, p := range w {
		if constY && i > 0 && p.F != initY {
			constY = false
		}
		n += 1.0
		x := float64(p.T-interceptTime) / 1e3
		sumY, cY = kahanInc(p.F, sumY, cY)
		sumXY, cXY = kahanInc(x*p.F, sumXY, cXY)
	}
	if constY {
		if math.IsInf(initY, 0) {
			return math.NaN(), math.NaN()
		}
		return 0, initY
	}
	sumX := xs.sumX + xs.cX
	sumY += cY
	sumXY += cXY
	sumX2 := xs.sumX2 + xs.cX2

	covXY := sumXY - sumX*sumY/n
	varX := sumX2 - sumX*sumX/n

	slope = covXY / varX
	intercept = sumY/n - slope*sumX/n
	return slope, intercept
}

// kahanInc is kahansum.Inc (util/kahansum of Prometheus v0.316.0) written out to be inlined:
// that function is not, and in a loop the call costs more than its arithmetic. The same
// operations on the same values; inc is converted, which rounds it to float64, so that no
// product handed in is fused with the addition (what the conversions there are for).
func kahanInc(inc, sum, c float64) (float64, float64) {
	inc = float64(inc)
	t := sum + inc
	if t > math.MaxFloat64 || t < -math.MaxFloat64 { // infinite, as kahansum's isInf says
		return t, 0
	}
	if math.Abs(sum) >= math.Abs(inc) {
		return t, c + ((sum - t) + inc)
	}
	return t, c + ((inc - t) + sum)
}

// sumOverTime is sum_over_time of w, floats: a compensated sum (aggrOverTime in
// funcSumOverTime).
func sumOverTime(w []promql.FPoint) float64 {
	var sum, c float64
	for _, p := range w {
		sum, c = kahanInc(p.F, sum, c)
	}
	if math.IsInf(sum, 0) {
		return sum
	}
	return sum + c
}

// avgOverTime is avg_over_time of w, floats, while their compensated sum does not overflow
// (ok); where it would, Prometheus's function goes on with an incremental mean, and the window
// is left to it.
func avgOverTime(w []promql.FPoint) (avg float64, ok bool) {
	sum, c := w[0].F, 0.0
	for _, p := range w[1:] {
		newSum, newC := kahanInc(p.F, sum, c)
		if math.IsInf(newSum, 0) {
			return 0, false
		}
		sum, c = newSum, newC
	}
	count := float64(len(w))
	return sum/count + c/count, true
}

// varianceOverTime is stdvar_over_time of w, floats (varianceOverTime in
// funcStdvarOverTime): a running mean and sum of squares, both compensated; stddev_over_time is
// its square root.
func varianceOverTime(w []promql.FPoint) float64 {
	var count, mean, cMean, aux, cAux float64
	for _, p := range w {
		count++
		delta := p.F - (mean + cMean)
		mean, cMean = kahanInc(delta/count, mean, cMean)
		aux, cAux = kahanInc(delta*(p.F-(mean+cMean)), aux, cAux)
	}
	return (aux + cAux) / count
}

// max_over_time and min_over_time compare every sample of the window at every step
// (compareOverTime); a window of an hour at 15 s is 240 comparisons a step. Their answer is, of
// the window's values that are not NaN, the first one equal to the largest (smallest): a later
// equal one, such as 0 after -0, does not replace it; and the last value when all are NaN.
// extremes keeps the candidates as the windows move forward, each sample entering and leaving
// once.

// extremes is a monotonic queue of sample numbers (as sampleMarks counts them): of the samples
// of the current window up to the last pushed, those not NaN with no later one larger (max) or
// smaller (min). Their values decrease (increase) or stay equal, the first pushed first, so the
// first is the answer.
type extremes struct {
	at    []int
	first int // at[first:] are the candidates
	next  int // the number of the next sample to push
}

func (e *extremes) reset() { e.at, e.first, e.next = e.at[:0], 0, 0 }

// answer returns max_over_time (or min) of the window buf[lo:hi], whose samples are numbered
// from dropped+lo, after the windows before it.
func (e *extremes) answer(buf []promql.FPoint, lo, hi, dropped int, isMax bool) float64 {
	// Forget the samples before the window (buf no longer holds some of them).
	e.next = max(e.next, dropped+lo)
	for e.first < len(e.at) && e.at[e.first] < dropped+lo {
		e.first++
	}
	if e.first > 64 && e.first >= len(e.at)/2 {
		e.at = e.at[:copy(e.at, e.at[e.first:])]
		e.first = 0
	}
	for ; e.next < dropped+hi; e.next++ {
		v := buf[e.next-dropped].F
		if math.IsNaN(v) {
			continue
		}
		// Those it beats go; an equal one stays before it.
		for len(e.at) > e.first {
			last := buf[e.at[len(e.at)-1]-dropped].F
			if isMax && !(last < v) || !isMax && !(last > v) {
				break
			}
			e.at = e.at[:len(e.at)-1]
		}
		e.at = append(e.at, e.next)
	}
	if e.first == len(e.at) {
		return buf[hi-1].F // all NaN: the last
	}
	return buf[e.at[e.first]-dropped].F
}
