package queryext

import (
	"time"

	"github.com/prometheus/prometheus/promql"
)

// rate, increase, irate and idelta over windows, computed here rather than by Prometheus's
// functions where that costs less and gives the same float, bit for bit.
//
// Prometheus's extrapolatedRate walks the whole window at
// every step to find counter resets, and with windows much longer than the step (a 5m range
// at 15 s is 20 samples, increase over 1h is 240) that walk is most of what a query of rate
// costs. Resets are rare and found here once per sample, as a sample enters the buffer
// (counterResets); a window that holds none is computed by counterRate in O(1), a window that
// holds one is handed to Prometheus's function as any other.

// counterResets are the samples of a series' window buffer that are lower than the sample
// before them, the resets extrapolatedRate adds back, by their number in the series (the
// buffer's index plus what was dropped from its front before), in order.
type counterResets struct {
	at    []int
	first int // at[first:] may still be in a window
}

// add notes the sample numbered n, its value f after prev.
func (r *counterResets) add(n int, f, prev float64) {
	if f < prev { // as extrapolatedRate compares: NaN is no reset
		r.at = append(r.at, n)
	}
}

// within reports whether a reset is in the window of samples numbered lo to hi (inclusive):
// a sample numbered lo+1 to hi that is lower than the one before it. Windows move forward
// only: resets before lo+1 are forgotten.
func (r *counterResets) within(lo, hi int) bool {
	for r.first < len(r.at) && r.at[r.first] <= lo {
		r.first++
	}
	return r.first < len(r.at) && r.at[r.first] <= hi
}

func (r *counterResets) reset() { r.at, r.first = r.at[:0], 0 }

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
