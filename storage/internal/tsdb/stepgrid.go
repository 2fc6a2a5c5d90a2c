package tsdb

import (
	"context"

	"github.com/prometheus/prometheus/storage"
)

// StepGrid is where a range query evaluates its instant-vector selectors: at Start,
// Start+Step, ... up to End (milliseconds), each taking the newest sample at or before the step
// that is less than Lookback old (Prometheus's engine, vectorSelectorSingle). Of a series
// sampled every 15 s and a query stepping by 60 s, that is one sample in four; the others are
// read, decoded and stepped over by the engine one call at a time for nothing.
//
// A context carrying a grid (WithStepGrid) lets Select leave those samples out of what it
// returns (they are still decoded: their times decide), for the selectors whose hints say
// exactly that grid: no range, the grid's step, from Start-Lookback+1 to End, the hints
// Prometheus's engine gives a selector with no offset, no @ and outside any subquery
// (promql.getTimeRangesForSelector). Whoever puts a grid in the context promises that
// such a selector is evaluated at the grid's steps only, as queryext checks on the query.
type StepGrid struct {
	Start, End, Step, Lookback int64
}

type stepGridKey struct{}

// WithStepGrid returns ctx carrying g for the Selects made with it.
func WithStepGrid(ctx context.Context, g StepGrid) context.Context {
	return context.WithValue(ctx, stepGridKey{}, g)
}

// StepGridFrom returns the grid ctx carries, if any.
func StepGridFrom(ctx context.Context) (StepGrid, bool) {
	g, ok := ctx.Value(stepGridKey{}).(StepGrid)
	return g, ok
}

// Selects reports whether hints are those of a selector evaluated at g's steps (no range, the
// grid's step, from Start-Lookback+1 to End), for a grid within the bounds of maxGridTime.
func (g StepGrid) Selects(hints *storage.SelectHints) bool {
	if hints == nil || g.Step <= 0 || g.Lookback <= 0 || g.End < g.Start ||
		g.Start < -maxGridTime || g.End > maxGridTime || g.Lookback > maxGridTime || g.Step > maxGridTime {
		return false
	}
	return hints.Range == 0 && !hints.DisableTrimming && hints.Step == g.Step &&
		hints.Start == g.Start-g.Lookback+1 && hints.End == g.End
}

// stepGridFor returns the grid in ctx when hints select for it (see StepGrid); the zero
// stepGrid, which leaves every sample in, otherwise.
func stepGridFor(ctx context.Context, hints *storage.SelectHints) stepGrid {
	g, ok := StepGridFrom(ctx)
	if !ok || !g.Selects(hints) {
		return stepGrid{}
	}
	return stepGrid{start: g.Start, step: g.Step, at: g.Start}
}

// maxGridTime bounds the times, the step and the lookback of a grid (about 36 million years),
// so that atOrAfter's sums stay within int64: what it is asked about is a sample at or before
// End plus a step (skip never moves past the first step at or after the sample it starts at).
const maxGridTime = 1 << 60

// stepGrid thins what a series iterator returns to the samples the steps of a grid read.
// The zero value leaves every sample in.
type stepGrid struct {
	start, step int64
	at          int64 // a step: the first, or the last atOrAfter returned
}

// atOrAfter returns the first step at or after t (for t after the last step, a step past
// it: no sample there is read by a step, and none is left out for it either).
func (g *stepGrid) atOrAfter(t int64) int64 {
	if t > g.at || t <= g.at-g.step {
		if t <= g.start {
			g.at = g.start
		} else {
			g.at = g.start + (t-g.start+g.step-1)/g.step*g.step
		}
	}
	return g.at
}

// skip returns the index of the next sample of ts from i on that a step reads: the newest at
// or before a step. Sample i is stepped over when the next one is at or before the first step
// at or after sample i, which then reads the next one (or a later one) instead. The last
// sample of ts is never stepped over: what follows it is not known here.
func (g *stepGrid) skip(ts []int64, i int) int {
	// The samples stepped over are at or before the step at or after sample i, so that step is
	// also the first at or after each of them: one step for the whole loop.
	at := g.atOrAfter(ts[i])
	for i+1 < len(ts) && ts[i+1] <= at {
		i++
	}
	return i
}
