package soak

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/metricstor/metricstor/testbed/workload"
)

// The PromQL the queriers run, in turn, at the sample time the load has reached: instant
// queries, and range queries over the last 10 minutes of sample time at a 15 s step.
var soakQueries = []struct {
	query string
	rng   bool
}{
	{`sum by (instance) (rate(node_cpu_seconds_total{job="loadgen"}[1m]))`, false},
	{`count({job="loadgen"})`, false},
	{`topk(5, rate(node_network_receive_bytes_total[2m]))`, true},
	{`sum by (instance) (workload_value)`, false},
	{`max_over_time(workload_count_total[5m])`, true},
	{`histogram_quantile(0.9, sum by (le) (rate(node_disk_io_now[1m])))`, false},
}

// querierStats are the counts of the queriers.
type querierStats struct {
	mu        sync.Mutex
	ok, fail  int
	down      int             // no answer: the binary was not running (restarts)
	latencies []time.Duration // of the answered queries
	lastErr   string
}

// startQueriers runs n queriers until ctx is done, each one query after the other with a short
// pause; wait waits for them.
func startQueriers(ctx context.Context, api promv1.API, w *workload.Workload, n int) (*querierStats, func()) {
	qs := &querierStats{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; ctx.Err() == nil; k++ {
				q := soakQueries[k%len(soakQueries)]
				at := time.UnixMilli(w.Timestamp(max(w.Streams[0].Settled()-1, 0)))
				qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				start := time.Now()
				var err error
				if q.rng {
					_, _, _, err = api.QueryRange(qctx, q.query, promv1.Range{Start: at.Add(-10 * time.Minute), End: at, Step: 15 * time.Second})
				} else {
					_, _, _, err = api.Query(qctx, q.query, at)
				}
				took := time.Since(start)
				cancel()
				if ctx.Err() != nil {
					return
				}
				qs.mu.Lock()
				switch {
				case err != nil && noServer(err):
					qs.down++
				case err != nil:
					qs.fail++
					qs.lastErr = err.Error()
				default:
					qs.ok++
					qs.latencies = append(qs.latencies, took)
				}
				qs.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	return qs, wg.Wait
}

// latency returns the q-quantile of the answered queries' latencies (nearest rank).
func (qs *querierStats) latency(q float64) time.Duration {
	qs.mu.Lock()
	defer qs.mu.Unlock()
	if len(qs.latencies) == 0 {
		return 0
	}
	l := slices.Clone(qs.latencies)
	slices.Sort(l)
	return l[min(int(q*float64(len(l))), len(l)-1)]
}

// noServer reports whether a query failed for want of a server (refused or broken connection).
func noServer(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}
