package queryext

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	mstorage "github.com/metricstor/metricstor/storage"
)

// statusSeries are loaded into both stores of TestTSDBStatus: 5 series, 3 metric names.
var statusSeries = []labels.Labels{
	labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "a", "code", "200"),
	labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "a", "code", "500"),
	labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "b", "code", "200"),
	labels.FromStrings("__name__", "up", "job", "api", "instance", "a"),
	labels.FromStrings("__name__", "process_cpu_seconds_total", "job", "db", "instance", "c"),
}

func loadStatusSeries(t *testing.T, app promstorage.AppenderV2) {
	for i, ls := range statusSeries {
		for j := range int64(3) {
			_, err := app.Append(0, ls, 0, t0+int64(i)*1000+j*15_000, float64(j), nil, nil, promstorage.AppendV2Options{})
			require.NoError(t, err)
		}
	}
	require.NoError(t, app.Commit())
}

// startOnStore starts the extension over any store and returns its base URL.
func startOnStore(t *testing.T, store component.Component) string {
	cfg := createDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	require.NoError(t, cfg.Validate())
	ext, err := NewFactory().Create(context.Background(), nopSettings(), cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), testHost{cfg.Storage: store}))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(context.Background())) })
	require.NoError(t, ext.(*promqlExtension).Ready())
	return "http://" + ext.(*promqlExtension).addr.String()
}

// TestTSDBStatus: /api/v1/status/tsdb over the metricstor store answers with Prometheus's field
// names (decoded strictly into Prometheus's own v1.TSDBStatus) and exactly what Prometheus's
// own TSDB answers for the same series; limit is applied and checked as in Prometheus; the
// runtime info shows the store's retention.
func TestTSDBStatus(t *testing.T) {
	ctx := context.Background()
	sf := mstorage.NewFactory()
	scfg := sf.CreateDefaultConfig().(*mstorage.Config)
	scfg.Directory = t.TempDir()
	scfg.Retention = 0 // the samples are from 2023
	scfg.RetentionSize = "10GB"
	ext, err := sf.Create(ctx, extension.Settings{ID: component.NewID(sf.Type()), TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}, scfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(ctx)) })
	ours := ext.(mstorage.Store)
	loadStatusSeries(t, ours.AppenderV2(ctx))
	prom := newTestStore(t, nil)
	loadStatusSeries(t, prom.AppenderV2(ctx))

	base, promBase := startOnStore(t, ext), startOnStore(t, prom)
	status := func(base string, params url.Values) v1.TSDBStatus {
		t.Helper()
		res := get(t, base, "/api/v1/status/tsdb", params)
		require.Equal(t, http.StatusOK, res.code, res.body)
		var env struct {
			Status string          `json:"status"`
			Data   json.RawMessage `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(res.body), &env))
		require.Equal(t, "success", env.Status)
		dec := json.NewDecoder(bytes.NewReader(env.Data))
		dec.DisallowUnknownFields() // every field is one of Prometheus's
		var st v1.TSDBStatus
		require.NoError(t, dec.Decode(&st))
		return st
	}

	got := status(base, nil)
	assert.Equal(t, v1.HeadStats{NumSeries: 5, NumLabelPairs: 10, ChunkCount: 5, MinTime: t0, MaxTime: t0 + 4000 + 30_000}, got.HeadStats)
	assert.Equal(t, []v1.TSDBStat{
		{Name: "http_requests_total", Value: 3},
		{Name: "process_cpu_seconds_total", Value: 1},
		{Name: "up", Value: 1},
	}, got.SeriesCountByMetricName)
	assert.Equal(t, []v1.TSDBStat{{Name: "job=api", Value: 4}, {Name: "__name__=http_requests_total", Value: 3}}, got.SeriesCountByLabelValuePair[:2])
	// Prometheus orders equal counts by map order, and its default limit (10) would cut among
	// them: compare everything, in our order.
	all := url.Values{"limit": {"100"}}
	want, gotAll := status(promBase, all), status(base, all)
	for _, l := range []*[]v1.TSDBStat{&want.SeriesCountByMetricName, &want.LabelValueCountByLabelName, &want.MemoryInBytesByLabelName, &want.SeriesCountByLabelValuePair} {
		slices.SortStableFunc(*l, func(a, b v1.TSDBStat) int {
			if c := cmp.Compare(b.Value, a.Value); c != 0 {
				return c
			}
			return cmp.Compare(a.Name, b.Name)
		})
	}
	assert.Equal(t, want, gotAll, "the same answer as Prometheus's TSDB for the same series")
	assert.Len(t, gotAll.SeriesCountByLabelValuePair, 10)

	limited := status(base, url.Values{"limit": {"1"}})
	assert.Equal(t, []v1.TSDBStat{{Name: "http_requests_total", Value: 3}}, limited.SeriesCountByMetricName)
	assert.Len(t, limited.LabelValueCountByLabelName, 1)
	assert.Len(t, limited.MemoryInBytesByLabelName, 1)
	assert.Len(t, limited.SeriesCountByLabelValuePair, 1)

	res := get(t, base, "/api/v1/status/tsdb", url.Values{"limit": {"0"}})
	assert.Equal(t, http.StatusBadRequest, res.code)
	assert.JSONEq(t, `{"status":"error","errorType":"bad_data","error":"limit must be a positive number"}`, res.body)

	res = get(t, base, "/api/v1/status/self_metrics", url.Values{"metric_name_pattern": {"prometheus_tsdb_head_chunks"}})
	assert.Equal(t, http.StatusOK, res.code, res.body)
	assert.Contains(t, res.body, `"prometheus_tsdb_head_chunks"`)

	res = get(t, base, "/api/v1/status/runtimeinfo", nil)
	require.Equal(t, http.StatusOK, res.code, res.body)
	var rt struct {
		Data v1.RuntimeInfo `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &rt))
	assert.Equal(t, "10GiB", rt.Data.StorageRetention)
}
