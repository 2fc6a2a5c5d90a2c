package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
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

// Insert blocks until a slot is free or ctx is done. The engine turns ctx's error into
// a timeout or cancellation of the query.
func (l *concurrencyLimiter) Insert(ctx context.Context, _ string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	select {
	case l.slots <- struct{}{}:
		return 0, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Delete implements promql.QueryTracker; it frees the slot taken by Insert.
func (l *concurrencyLimiter) Delete(int) { <-l.slots }

// Close implements promql.QueryTracker.
func (*concurrencyLimiter) Close() error { return nil }
