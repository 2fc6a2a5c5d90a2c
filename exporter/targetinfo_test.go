package exporter

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// twoPoints is one resource (with an attribute that makes a target_info series) and one gauge
// with data points at t0-span and t0.
func twoPoints(instance string, span time.Duration) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.Resource().Attributes().PutStr("service.instance.id", instance)
	rm.Resource().Attributes().PutStr("host.name", "h1")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("queue.size")
	dps := m.SetEmptyGauge().DataPoints()
	for _, at := range []int64{t0 - span.Milliseconds(), t0} {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(ts(at))
		dp.SetDoubleValue(1)
	}
	return md
}

// countSamples returns the number of samples of the series named name with the instance label.
func countSamples(t *testing.T, ft *fuzzTarget, name, instance string) int {
	t.Helper()
	q, err := ft.store.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, name),
		labels.MustNewMatcher(labels.MatchEqual, "instance", instance))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, ss.Err())
	return n
}

// The translator writes a target_info sample every lookback_delta/2 across a resource's data
// points: a day of them is 577 samples, but a request spanning years must not write millions.
func TestTargetInfoSpanBounded(t *testing.T) {
	ft := newFuzzTarget(t, nil)

	require.NoError(t, ft.push(t, twoPoints("day", 24*time.Hour)))
	assert.Equal(t, 2, countSamples(t, ft, "queue_size", "day"))
	assert.Equal(t, 24*60/2.5+1, float64(countSamples(t, ft, "target_info", "day")))

	err := ft.push(t, twoPoints("years", 50*365*24*time.Hour))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.True(t, strings.Contains(err.Error(), "span more than 10000 target_info samples"), "%v", err)
	// The data points are stored; target_info up to the bound.
	assert.Equal(t, 2, countSamples(t, ft, "queue_size", "years"))
	assert.Equal(t, maxTargetInfoSamples, countSamples(t, ft, "target_info", "years"))
}
