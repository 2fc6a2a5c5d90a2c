package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// pointLimitEngine refuses range queries whose result holds more than maxPoints points (the
// float and histogram points of all its series: steps × series at most). The engine's
// max_samples bounds the memory of evaluation; this bounds the answer, whose JSON costs about
// 30 bytes a point to build and send. Prometheus's own API also refuses more than 11,000 steps
// per series before evaluation (bad_data); that check stays.
type pointLimitEngine struct {
	promql.QueryEngine
	maxPoints int
}

// limitPoints wraps e so that range queries are held to maxPoints.
func limitPoints(e promql.QueryEngine, maxPoints int) promql.QueryEngine {
	return pointLimitEngine{QueryEngine: e, maxPoints: maxPoints}
}

func (e pointLimitEngine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	qry, err := e.QueryEngine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
	if err != nil {
		return nil, err
	}
	return &pointLimitQuery{Query: qry, maxPoints: e.maxPoints}, nil
}

type pointLimitQuery struct {
	promql.Query
	maxPoints int
}

// errTooManyPoints is the refusal of a range query's result. The API answers errors it does not
// know with errorType execution (HTTP 422), as it does for max_samples.
type errTooManyPoints struct{ points, series, maxPoints int }

func (e errTooManyPoints) Error() string {
	return fmt.Sprintf("query result has %d points in %d series, more than max_points_per_range_query %d: "+
		"select fewer series, or use a larger step or a shorter range", e.points, e.series, e.maxPoints)
}

func (q *pointLimitQuery) Exec(ctx context.Context) *promql.Result {
	res := q.Query.Exec(ctx)
	m, ok := res.Value.(promql.Matrix)
	if res.Err != nil || !ok {
		return res
	}
	points := 0
	for _, s := range m {
		points += len(s.Floats) + len(s.Histograms)
	}
	if points <= q.maxPoints {
		return res
	}
	// The matrix stays with the query, which returns it to the engine's pools on Close.
	return &promql.Result{Err: errTooManyPoints{points: points, series: len(m), maxPoints: q.maxPoints}, Warnings: res.Warnings}
}
