package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"

	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	mstorage "github.com/metricstor/metricstor/storage"
)

// A range query's instant-vector selector is evaluated at each step from the newest sample at
// or before it; of a series scraped every 15 s, a query stepping by 60 s reads one sample in
// four, and Prometheus's engine steps over the other three one call at a time. The store can
// leave those out when it knows the steps (mstorage.StepGrid): gridQuery tells it, for the
// queries where every instant-vector selector that the store sees with the grid's hints is
// evaluated at the grid's steps and nowhere else (onStepsOnly). The answer is the same samples
// at the same steps, so Prometheus's, bit for bit.

// gridQuery is a range query whose Exec tells the store its steps.
type gridQuery struct {
	promql.Query
	grid mstorage.StepGrid
}

func (q gridQuery) Exec(ctx context.Context) *promql.Result {
	return q.Query.Exec(mstorage.WithStepGrid(ctx, q.grid))
}

// withStepGrid returns q telling the store its steps when thin, q itself otherwise or when q
// is not a range query of two steps or more. The samples left out are not counted as read by
// anyone: the engine's query cost accounting (EngineOpts.EnableQueryCost, max_samples_read)
// would count them, and is off in the engines of newEngines.
func withStepGrid(q promql.Query, thin bool) promql.Query {
	stmt, ok := q.Statement().(*parser.EvalStmt)
	if !thin || !ok || stmt.Interval <= 0 || !stmt.End.After(stmt.Start) || stmt.LookbackDelta <= 0 {
		return q
	}
	return gridQuery{Query: q, grid: mstorage.StepGrid{
		Start:    timestamp.FromTime(stmt.Start),
		End:      timestamp.FromTime(stmt.End),
		Step:     stmt.Interval.Milliseconds(),
		Lookback: stmt.LookbackDelta.Milliseconds(),
	}}
}

// onStepsOnly reports whether every instant-vector selector of expr is evaluated at the
// query's steps, moved by its offset or pinned by its @ (both of which change its hints, so
// that the store does not take the grid for it): no subquery (its steps are its own, aligned to
// its step), no smoothed or anchored selector (they read samples after a step too), and no
// info() (it selects info series on its own terms).
func onStepsOnly(expr parser.Expr) bool {
	ok := true
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.SubqueryExpr:
			ok = false
		case *parser.VectorSelector:
			ok = ok && !n.Smoothed && !n.Anchored
		case *parser.Call:
			ok = ok && n.Func.Name != "info"
		}
		return nil
	})
	return ok
}
