package exporter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/storage"
)

func TestClassifyAppendError(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string // empty: fatal
	}{
		{promstorage.ErrOutOfOrderSample, "out_of_order"},
		{fmt.Errorf("series x: %w", promstorage.ErrOutOfOrderSample), "out_of_order"},
		{promstorage.ErrTooOldSample, "too_old"},
		{promstorage.ErrDuplicateSampleForTimestamp, "duplicate"},
		{promstorage.NewDuplicateFloatErr(1, 2, 3), "duplicate"},
		{promstorage.ErrOutOfBounds, "out_of_bounds"},
		{promstorage.ErrNativeHistogramsDisabled, "native_histograms_disabled"},
		{histogram.ErrHistogramCountMismatch, "invalid_histogram"},
		{fmt.Errorf("wrapped: %w", histogram.ErrHistogramNegativeBucketCount), "invalid_histogram"},
		{fmt.Errorf("%w: series has 31 labels, more than max_labels_per_series (30)", storage.ErrLimitExceeded), "limit_exceeded"},
		{storage.ErrInvalidSample, "invalid_sample"},
		{storage.ErrNotRunning, ""},
		{fmt.Errorf("%w: disk full", storage.ErrUnavailable), ""},
		{context.DeadlineExceeded, ""},
		{errors.New("disk on fire"), ""},
	} {
		reason, ok := classifyAppendError(tc.err)
		if tc.reason == "" {
			assert.False(t, ok, "%v must be fatal", tc.err)
			continue
		}
		if assert.True(t, ok, "%v must reject one sample", tc.err) {
			assert.Equal(t, tc.reason, reason.String(), tc.err)
		}
	}
}

// scriptedAppender returns the scripted error for each Append in turn.
type scriptedAppender struct {
	errs     []error
	appended int
}

func (a *scriptedAppender) Append(_ promstorage.SeriesRef, _ labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ promstorage.AOptions) (promstorage.SeriesRef, error) {
	err := a.errs[0]
	a.errs = a.errs[1:]
	if err == nil {
		a.appended++
		return 1, nil
	}
	return 0, err
}
func (*scriptedAppender) Commit() error   { return nil }
func (*scriptedAppender) Rollback() error { return nil }

func TestCountingAppender(t *testing.T) {
	partial := &promstorage.AppendPartialError{ExemplarErrors: []promstorage.ExemplarError{{Index: 0, Err: promstorage.ErrOutOfOrderExemplar}}}
	inner := &scriptedAppender{errs: []error{nil, partial, promstorage.ErrTooOldSample, promstorage.ErrTooOldSample, storage.ErrNotRunning}}
	var a countingAppender
	a.reset(inner)
	ls := labels.FromStrings("__name__", "m")

	for range 4 {
		_, err := a.Append(0, ls, 0, 10, 1, nil, nil, promstorage.AOptions{})
		require.NoError(t, err, "rejections and partial errors stay inside the appender")
	}
	_, err := a.Append(0, ls, 0, 10, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, storage.ErrNotRunning)
	_, err = a.Append(0, ls, 0, 10, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, storage.ErrNotRunning, "after a fatal error appends fail fast")

	assert.Equal(t, 2, a.accepted, "a partial (exemplar) error still stores the sample")
	assert.Equal(t, 2, a.rejected[reasonTooOld])
	assert.Equal(t, 2, a.totalRejected())
	assert.EqualError(t, a.firstRejected[reasonTooOld], `series {__name__="m"} at 10: too old sample`)
	assert.Nil(t, a.firstRejected[reasonDuplicate])
	assert.ErrorIs(t, a.fatal, storage.ErrNotRunning)
}

// TestCountingAppenderWritten: what a partial write reports as written, by kind.
func TestCountingAppenderWritten(t *testing.T) {
	// Two errors for exemplar 1 (as behind a fanout storage) count it once.
	partial := &promstorage.AppendPartialError{ExemplarErrors: []promstorage.ExemplarError{
		{Index: 1, Err: promstorage.ErrOutOfOrderExemplar}, {Index: 1, Err: promstorage.ErrOutOfOrderExemplar},
	}}
	inner := &scriptedAppender{errs: []error{nil, partial, nil, promstorage.ErrDuplicateSampleForTimestamp}}
	var a countingAppender
	a.reset(inner)
	ls := labels.FromStrings("__name__", "m")
	three := promstorage.AOptions{Exemplars: make([]exemplar.Exemplar, 3)}
	for _, app := range []struct {
		h    *histogram.Histogram
		opts promstorage.AOptions
	}{{nil, three}, {nil, three}, {&histogram.Histogram{}, promstorage.AOptions{}}, {nil, three}} {
		_, err := a.Append(0, ls, 0, 10, 1, app.h, nil, app.opts)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, a.accepted)
	assert.Equal(t, 1, a.acceptedHistograms)
	assert.Equal(t, 3+2, a.acceptedExemplars, "the rejected sample's exemplars and the refused exemplar are not written")
	assert.Equal(t, 1, a.rejected[reasonDuplicate])
}

// Concurrent pushes share the converter pool; run with -race.
func TestPushConcurrent(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, func(cfg *Config) { cfg.TargetInfo = false })

	const workers, pushes = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range pushes {
				md := pmetric.NewMetrics()
				addGauge(newResource(md), fmt.Sprintf("worker%d.gauge", w), point{"used", t0 + int64(i)*1000, float64(i)})
				assert.NoError(t, h.exp.ConsumeMetrics(context.Background(), md))
			}
		})
	}
	wg.Wait()

	got := dump(t, store)
	require.Len(t, got, workers)
	for _, samples := range got {
		assert.Len(t, samples, pushes)
	}
	assert.Equal(t, int64(workers*pushes), h.counter(t, "metricstor_exporter_samples_accepted"))
}

// BenchmarkPush measures (never asserts) one OTLP push of allKinds (13 samples: a gauge, a
// counter, a classic and an exponential histogram, a summary, with metadata) through the
// translator into the metricstor store: the storage extension started on a temporary directory,
// reached through storage.Store as in the collector. The push holds a native histogram and
// metadata, which the sample log does not carry, so each commit waits for Pebble's synced WAL.
func BenchmarkPush(b *testing.B) {
	store := startStore(b)
	exp, err := newMetricstorExporter(createDefaultConfig().(*Config), componenttest.NewNopTelemetrySettings())
	require.NoError(b, err)
	exp.store = store
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		md := allKindsAt(t0 + int64(i)*1000) // in order for every series
		b.StartTimer()
		if err := exp.pushMetrics(ctx, md); err != nil {
			b.Fatal(err)
		}
	}
}
