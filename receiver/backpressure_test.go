package receiver

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/metricstor/metricstor/storage"
)

// flakyStore is a store that is "not running" while down is set, as the storage extension is
// before start and after shutdown.
type flakyStore struct {
	storage.Store
	down *atomic.Bool
}

func (s flakyStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return flakyAppender{AppenderV2: s.Store.AppenderV2(ctx), down: s.down}
}

type flakyAppender struct {
	promstorage.AppenderV2
	down *atomic.Bool
}

func (a flakyAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if a.down.Load() {
		return 0, storage.ErrNotRunning
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// TestStoreUnavailableIsRetryable: while the store is unavailable the sender gets 503 and
// nothing is stored; the sender's retry of the same request then succeeds and the data is stored
// once. The exporter's defaults (no retry_on_failure) give the 503 at once.
func TestStoreUnavailableIsRetryable(t *testing.T) { bothWays(t, testStoreUnavailableIsRetryable) }

func testStoreUnavailableIsRetryable(t *testing.T, direct bool) {
	var down atomic.Bool
	down.Store(true)
	url, store := startPipelineWith(t, direct,
		func(s storage.Store) storage.Store { return flakyStore{Store: s, down: &down} },
		func(component.Config) {})
	req := validV1()
	for range 3 {
		r := pushV1(t, url, req)
		assert.Equal(t, http.StatusServiceUnavailable, r.code, r.body)
		assert.Contains(t, r.body, "not running")
	}
	assert.Empty(t, readAll(t, store), "nothing stored while the store is down")

	down.Store(false)
	r := pushV1(t, url, req)
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	assertSeries(t, map[string][]point{
		`{__name__="up", instance="i", job="j"}`: floats([]int64{1000, 2000}, 1, 0),
	}, readAll(t, store))
}

// TestStoreUnavailableExporterRetry: with the exporter's retry_on_failure enabled (off by
// default) the request is held while the store is briefly unavailable and answered 204 once the
// store is back: nothing lost.
func TestStoreUnavailableExporterRetry(t *testing.T) { bothWays(t, testStoreUnavailableExporterRetry) }

func testStoreUnavailableExporterRetry(t *testing.T, direct bool) {
	var down atomic.Bool
	down.Store(true)
	url, store := startPipelineWith(t, direct,
		func(s storage.Store) storage.Store { return flakyStore{Store: s, down: &down} },
		func(cfg component.Config) {
			rc := configretry.NewDefaultBackOffConfig()
			rc.InitialInterval = 50 * time.Millisecond
			require.NoError(t, unmarshalInto(cfg, map[string]any{"retry_on_failure": map[string]any{"enabled": true, "initial_interval": rc.InitialInterval}}))
		})
	time.AfterFunc(300*time.Millisecond, func() { down.Store(false) })
	r := pushV1(t, url, validV1())
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	assert.Len(t, readAll(t, store), 1)
}

// TestMemoryLimiterRefuses puts the real memory_limiter processor, with a limit below what the
// test process uses, before the exporter: the sender gets 503 (retryable) and nothing is stored.
func TestMemoryLimiterRefuses(t *testing.T) { bothWays(t, testMemoryLimiterRefuses) }

func testMemoryLimiterRefuses(t *testing.T, direct bool) {
	f := memorylimiterprocessor.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, unmarshalInto(cfg, map[string]any{"check_interval": "10ms", "limit_mib": 2, "spike_limit_mib": 1}))
	var proc processor.Metrics
	url, store := startPipelineWith(t, direct, nil, nil, func(next consumer.Metrics) consumer.Metrics {
		var err error
		proc, err = f.CreateMetrics(context.Background(), processortest.NewNopSettings(f.Type()), cfg, next)
		require.NoError(t, err)
		require.NoError(t, proc.Start(context.Background(), testHost{}))
		t.Cleanup(func() { require.NoError(t, proc.Shutdown(context.Background())) })
		return proc
	})
	var r response
	require.Eventually(t, func() bool {
		r = pushV1(t, url, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels: v1Labels("__name__", "refused"), Samples: []prompb.Sample{{Timestamp: 1, Value: 1}},
		}}})
		return r.code != http.StatusNoContent
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, http.StatusServiceUnavailable, r.code, r.body)
	assert.Contains(t, r.body, "data refused due to high memory usage")
	got := readAll(t, store)
	// The limiter may let the first request through before its first check; after that nothing.
	assert.LessOrEqual(t, len(got), 1)
}

// TestPermanentStoreRefusalIs400: data the store can never take (here a duplicate timestamp with
// a different value) gets 400, so senders drop it instead of retrying forever.
func TestPermanentStoreRefusalIs400(t *testing.T) { bothWays(t, testPermanentStoreRefusalIs400) }

func testPermanentStoreRefusalIs400(t *testing.T, direct bool) {
	url, store := startPipeline(t, direct)
	require.Equal(t, http.StatusNoContent, pushV1(t, url, validV1()).code)
	req := validV1()
	req.Timeseries[0].Samples = []prompb.Sample{{Timestamp: 2000, Value: 42}, {Timestamp: 3000, Value: 1}}
	r := pushV1(t, url, req)
	assert.Equal(t, http.StatusBadRequest, r.code, r.body)
	assert.Contains(t, r.body, "store rejected 1 of 2 samples (duplicate=1)")
	// The valid sample of the same request is stored.
	assertSeries(t, map[string][]point{
		`{__name__="up", instance="i", job="j"}`: floats([]int64{1000, 2000, 3000}, 1, 0, 1),
	}, readAll(t, store))
}
