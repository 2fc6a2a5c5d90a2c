package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/promql"
)

// concurrencyLimiter is a promql.QueryTracker that only bounds how many queries the engine
// evaluates at once (max_concurrency). Prometheus's ActiveQueryTracker also logs queries to an
// mmapped file for crash forensics, which we do not need.
type concurrencyLimiter struct {
	slots chan struct{} // one token per running query; capacity is max_concurrency
}

func newConcurrencyLimiter(n int) *concurrencyLimiter {
	return &concurrencyLimiter{slots: make(chan struct{}, n)}
}

// GetMaxConcurrent implements promql.QueryTracker.
func (l *concurrencyLimiter) GetMaxConcurrent() int { return cap(l.slots) }

// Insert blocks until a slot is free or ctx is done. A query that runs out of time (or is
// canceled) while waiting fails as promql.ErrQueryTimeout (or ErrQueryCanceled), which the API
// answers with errorType timeout, 503 (or canceled, 499). The engine passes our error through
// unchanged, so a bare context error would be answered as execution, 422.
func (l *concurrencyLimiter) Insert(ctx context.Context, _ string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, queueErr(err)
	}
	select {
	case l.slots <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, queueErr(ctx.Err())
	}
}

func queueErr(err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return promql.ErrQueryTimeout("query queue")
	case errors.Is(err, context.Canceled):
		return promql.ErrQueryCanceled("query queue")
	default:
		return err
	}
}

// Delete implements promql.QueryTracker; it frees the slot taken by Insert.
func (l *concurrencyLimiter) Delete(int) { <-l.slots }

// Close implements promql.QueryTracker.
func (*concurrencyLimiter) Close() error { return nil }
