package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap/zaptest"

	compmetadata "github.com/metricstor/metricstor/storage/internal/metadata"
)

func newTestExtension(t *testing.T, dir string, tel *componenttest.Telemetry) *storageExtension {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.Directory = dir
	set := extension.Settings{
		ID:                component.NewID(compmetadata.Type),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
	}
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	set.Logger = zaptest.NewLogger(t)
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	return ext.(*storageExtension)
}

func appendFloat(t *testing.T, s Store, ls labels.Labels, ts int64, v float64) {
	t.Helper()
	app := s.AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, ts, v, nil, nil, promstorage.AOptions{
		Metadata: metadata.Metadata{Type: model.MetricTypeGauge, Help: "test gauge", Unit: "bytes"},
	})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

func readFloats(t *testing.T, s Store, ms ...*labels.Matcher) map[string][]float64 {
	t.Helper()
	q, err := s.Querier(0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	out := map[string][]float64{}
	set := q.Select(context.Background(), true, nil, ms...)
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, v := it.At()
			out[set.At().Labels().String()] = append(out[set.At().Labels().String()], v)
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

func TestExtensionLifecycleKeepsData(t *testing.T) {
	dir := t.TempDir()
	ls := labels.FromStrings("__name__", "memory_used_bytes", "job", "api")
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "memory_used_bytes")

	ext := newTestExtension(t, dir, nil)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	appendFloat(t, ext, ls, 1000, 1.5)
	appendFloat(t, ext, ls, 2000, 2.5)
	require.Equal(t, map[string][]float64{ls.String(): {1.5, 2.5}}, readFloats(t, ext, name))
	require.NoError(t, ext.Shutdown(context.Background()))

	// After shutdown the store refuses work with ErrNotRunning instead of panicking.
	_, err := ext.Querier(0, 1)
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = ext.AppenderV2(context.Background()).Append(0, ls, 0, 3000, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, ErrNotRunning)

	// A new instance on the same directory sees everything, metadata included.
	ext2 := newTestExtension(t, dir, nil)
	require.NoError(t, ext2.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext2.Shutdown(context.Background())) }()
	require.Equal(t, map[string][]float64{ls.String(): {1.5, 2.5}}, readFloats(t, ext2, name))
	md, err := ext2.MetricMetadata(context.Background(), "")
	require.NoError(t, err)
	require.Equal(t, map[string][]metadata.Metadata{
		"memory_used_bytes": {{Type: model.MetricTypeGauge, Help: "test gauge", Unit: "bytes"}},
	}, md)
	md, err = ext2.MetricMetadata(context.Background(), "absent")
	require.NoError(t, err)
	require.Empty(t, md)
}

func TestExtensionDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	first := newTestExtension(t, dir, nil)
	require.NoError(t, first.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, first.Shutdown(context.Background())) }()

	second := newTestExtension(t, dir, nil)
	err := second.Start(context.Background(), componenttest.NewNopHost())
	require.Error(t, err)
	assert.Contains(t, err.Error(), dir, "the error names the directory")
	require.NoError(t, second.Shutdown(context.Background()))
}

func TestExtensionNotStarted(t *testing.T) {
	ext := newTestExtension(t, t.TempDir(), nil)
	_, err := ext.Querier(0, 1)
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = ext.ChunkQuerier(0, 1)
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = ext.ExemplarQuerier(context.Background())
	require.ErrorIs(t, err, ErrNotRunning)
	_, err = ext.MetricMetadata(context.Background(), "")
	require.ErrorIs(t, err, ErrNotRunning)
	require.ErrorIs(t, ext.AppenderV2(context.Background()).Commit(), ErrNotRunning)
	require.NoError(t, ext.Shutdown(context.Background()), "shutdown without start")
}

func TestExtensionTelemetry(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	ext := newTestExtension(t, t.TempDir(), tel)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()

	ls := labels.FromStrings("__name__", "up")
	appendFloat(t, ext, ls, 10_000, 1)
	appendFloat(t, ext, ls, 20_000, 1)
	app := ext.AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, 20_000, 0, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, promstorage.ErrDuplicateSampleForTimestamp)
	require.NoError(t, app.Rollback())

	sum := func(name string) int64 {
		m, err := tel.GetMetric(name)
		require.NoError(t, err, name)
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			var total int64
			for _, p := range d.DataPoints {
				total += p.Value
			}
			return total
		case metricdata.Gauge[int64]:
			return d.DataPoints[0].Value
		}
		t.Fatalf("%s: unexpected data %T", name, m.Data)
		return 0
	}
	assert.Equal(t, int64(2), sum("metricstor_storage_samples_appended"))
	assert.Equal(t, int64(1), sum("metricstor_storage_samples_rejected"))
	assert.Equal(t, int64(1), sum("metricstor_storage_series_created"))
	assert.Equal(t, int64(1), sum("metricstor_storage_head_series"))
	assert.Equal(t, int64(1), sum("metricstor_storage_partitions"))
	assert.Positive(t, sum("metricstor_storage_disk_usage"))
	assert.Equal(t, int64(0), sum("metricstor_storage_checkpoints"), "nothing is checkpointed before a minute")
	assert.Equal(t, int64(1), sum("metricstor_storage_writable"))
	assert.Equal(t, int64(0), sum("metricstor_storage_commits_refused"))
}

// A store whose filesystem has less free space than min_free_space_mib refuses writes with
// ErrUnavailable (retryable), says so in its telemetry, and still answers queries.
func TestExtensionRefusesWritesBelowTheReserve(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	dir := t.TempDir()
	ext := newTestExtension(t, dir, tel)
	ls := labels.FromStrings("__name__", "up")
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	appendFloat(t, ext, ls, 10_000, 1)
	require.NoError(t, ext.Shutdown(context.Background()))

	ext = newTestExtension(t, dir, tel)
	ext.cfg.MinFreeSpaceMiB = 1 << 40 // more than any disk has
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	app := ext.AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, 20_000, 2, nil, nil, promstorage.AOptions{})
	require.NoError(t, err)
	err = app.Commit()
	require.ErrorIs(t, err, ErrUnavailable)
	assert.ErrorContains(t, err, "below the reserve")
	assert.Equal(t, map[string][]float64{`{__name__="up"}`: {1}}, readFloats(t, ext))

	m, err := tel.GetMetric("metricstor_storage_writable")
	require.NoError(t, err)
	assert.Equal(t, int64(0), m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value)
	m, err = tel.GetMetric("metricstor_storage_commits_refused")
	require.NoError(t, err)
	assert.Equal(t, int64(1), m.Data.(metricdata.Sum[int64]).DataPoints[0].Value)
}

// The limits of the config reach the store: a series past one is refused with
// ErrLimitExceeded and counted under its reason; a size retention is reported.
func TestExtensionLimits(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	ext := newTestExtension(t, t.TempDir(), tel)
	ext.cfg.Limits.LabelsPerSeries = 2
	ext.cfg.Limits.ActiveSeries = 2
	ext.cfg.RetentionSize = "1GB"
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()

	app := ext.AppenderV2(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "up", "job", "a"), 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err, "at labels_per_series")
	_, err = app.Append(0, labels.FromStrings("__name__", "up", "job", "a", "x", "y"), 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, ErrLimitExceeded)
	require.ErrorContains(t, err, "series has 3 labels, more than limits.labels_per_series 2")
	_, err = app.Append(0, labels.FromStrings("__name__", "up", "job", "b"), 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.NoError(t, err, "at active_series")
	_, err = app.Append(0, labels.FromStrings("__name__", "up", "job", "c"), 0, 1000, 1, nil, nil, promstorage.AOptions{})
	require.ErrorIs(t, err, ErrLimitExceeded)
	require.ErrorContains(t, err, "limits.active_series is 2")
	require.NoError(t, app.Commit())
	assert.Len(t, readFloats(t, ext, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")), 2)

	m, err := tel.GetMetric("metricstor_storage_samples_rejected")
	require.NoError(t, err)
	byReason := map[string]int64{}
	for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
		r, _ := p.Attributes.Value("reason")
		byReason[r.AsString()] = p.Value
	}
	assert.Equal(t, int64(1), byReason["labels_per_series_limit"])
	assert.Equal(t, int64(1), byReason["active_series_limit"])
	assert.Equal(t, int64(0), byReason["label_value_length_limit"])
	m, err = tel.GetMetric("metricstor_storage_partitions_dropped")
	require.NoError(t, err)
	assert.Len(t, m.Data.(metricdata.Sum[int64]).DataPoints, 2, "one point per reason")
}

// A percentage retention_size reads the filesystem's size at start: the limit is known (and
// reported) from the start.
func TestExtensionRetentionSizePercent(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { require.NoError(t, tel.Shutdown(context.Background())) }()
	ext := newTestExtension(t, t.TempDir(), tel)
	ext.cfg.RetentionSize = "50%"
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	m, err := tel.GetMetric("metricstor_storage_retention_size_limit")
	require.NoError(t, err)
	assert.Positive(t, m.Data.(metricdata.Gauge[int64]).DataPoints[0].Value)
}

// TestExtensionSnapshot: a snapshot written where Prometheus's API writes it (inside the data
// directory) opens as a data directory of its own with the data of snapshot time, and the
// original, with the snapshot inside it, restarts with all its data.
func TestExtensionSnapshot(t *testing.T) {
	dir := t.TempDir()
	ls := labels.FromStrings("__name__", "memory_used_bytes", "job", "api")
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "memory_used_bytes")

	ext := newTestExtension(t, dir, nil)
	require.Equal(t, dir, ext.Dir())
	require.ErrorIs(t, ext.Snapshot(filepath.Join(dir, "snapshots", "early"), true), ErrNotRunning)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	appendFloat(t, ext, ls, 1000, 1.5)
	snapDir := filepath.Join(dir, "snapshots", "one")
	require.NoError(t, ext.Snapshot(snapDir, true))
	appendFloat(t, ext, ls, 2000, 2.5)
	require.NoError(t, ext.Shutdown(context.Background()))

	snap := newTestExtension(t, snapDir, nil)
	require.NoError(t, snap.Start(context.Background(), componenttest.NewNopHost()))
	require.Equal(t, map[string][]float64{ls.String(): {1.5}}, readFloats(t, snap, name))
	require.NoError(t, snap.Shutdown(context.Background()))

	ext = newTestExtension(t, dir, nil)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	require.Equal(t, map[string][]float64{ls.String(): {1.5, 2.5}}, readFloats(t, ext, name))
	require.NoError(t, ext.Shutdown(context.Background()))
}

// TestExtensionHeadStats: the store's head statistics count the series appended through it,
// and ErrNotRunning before Start.
func TestExtensionHeadStats(t *testing.T) {
	ext := newTestExtension(t, t.TempDir(), nil)
	_, err := ext.HeadStats(labels.MetricName, 10)
	require.ErrorIs(t, err, ErrNotRunning)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	appendFloat(t, ext, labels.FromStrings("__name__", "up", "job", "a"), 1000, 1)
	appendFloat(t, ext, labels.FromStrings("__name__", "up", "job", "b"), 2000, 1)
	st, err := ext.HeadStats(labels.MetricName, 10)
	require.NoError(t, err)
	require.EqualValues(t, 2, st.NumSeries)
	require.EqualValues(t, 1000, st.MinTime)
	require.EqualValues(t, 2000, st.MaxTime)
	require.Len(t, st.Postings.CardinalityMetricsStats, 1)
	require.Equal(t, "up", st.Postings.CardinalityMetricsStats[0].Name)
	require.EqualValues(t, 2, st.Postings.CardinalityMetricsStats[0].Count)
	require.NoError(t, ext.Shutdown(context.Background()))
}

// TestExtensionRetention: Retention prints the settings as Prometheus's runtimeinfo does.
func TestExtensionRetention(t *testing.T) {
	for _, tc := range []struct {
		retention time.Duration
		size      string
		want      string
	}{
		{15 * 24 * time.Hour, "0", "15d"},
		{0, "", ""},
		{0, "10GB", "10GiB"},
		{6 * time.Hour, "512MB", "6h or 512MiB"},
		{30 * 24 * time.Hour, " 7 %", "30d or 7%"},
	} {
		cfg := createDefaultConfig()
		cfg.Retention = model.Duration(tc.retention)
		cfg.RetentionSize = tc.size
		require.Equal(t, tc.want, newExtension(cfg, extension.Settings{}).Retention(), "%v %q", tc.retention, tc.size)
	}
}
