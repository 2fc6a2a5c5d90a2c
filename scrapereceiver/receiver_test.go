package scrapereceiver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/metricstor/metricstor/internal/passthrough"
	mdata "github.com/metricstor/metricstor/scrapereceiver/internal/metadata"
)

const exposition = `# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{code="200"} 7
# HELP app_temperature_celsius Temperature.
# TYPE app_temperature_celsius gauge
app_temperature_celsius 21.5
`

// TestScrapeThroughManager scrapes an httptest target with the receiver's real scrape and
// discovery managers into a sink and checks the scraped series, its metadata, target labels and
// the synthetic series of the scrape loop.
func TestScrapeThroughManager(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, exposition)
	}))
	defer target.Close()
	host := strings.TrimPrefix(target.URL, "http://")

	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"config": map[string]any{
			"global": map[string]any{"scrape_interval": "100ms", "scrape_timeout": "100ms"},
			"scrape_configs": []any{map[string]any{
				"job_name":       "app",
				"static_configs": []any{map[string]any{"targets": []any{host}, "labels": map[string]any{"env": "test"}}},
			}},
		},
	}).Unmarshal(cfg))
	require.NoError(t, cfg.Validate())

	sink := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(mdata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))

	require.Eventually(t, func() bool { return len(sink.AllMetrics()) >= 2 }, 30*time.Second, 20*time.Millisecond,
		"two scrapes reach the pipeline")
	require.NoError(t, r.Shutdown(context.Background()))
	afterShutdown := len(sink.AllMetrics())

	md := sink.AllMetrics()[0]
	require.Equal(t, 1, md.ResourceMetrics().Len())
	job, _ := md.ResourceMetrics().At(0).Resource().Attributes().Get(passthrough.JobAttribute)
	assert.Equal(t, "app", job.Str())

	c := findMetric(t, md, "app", host, "app_requests_total")
	require.Equal(t, pmetric.MetricTypeSum, c.Type())
	assert.Equal(t, "Requests served.", c.Description())
	dp := c.Sum().DataPoints().At(0)
	assert.Equal(t, 7.0, dp.DoubleValue())
	assert.Equal(t, map[string]any{"code": "200", "env": "test"}, dp.Attributes().AsRaw())

	g := findMetric(t, md, "app", host, "app_temperature_celsius")
	assert.Equal(t, 21.5, g.Gauge().DataPoints().At(0).DoubleValue())
	typ, _ := g.Metadata().Get(passthrough.KeyType)
	assert.Equal(t, "gauge", typ.Str())

	up := findMetric(t, md, "app", host, "up")
	assert.Equal(t, 1.0, up.Gauge().DataPoints().At(0).DoubleValue())
	for _, name := range []string{"scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"} {
		findMetric(t, md, "app", host, name)
	}
	assert.Equal(t, 2.0, findMetric(t, md, "app", host, "scrape_samples_scraped").Gauge().DataPoints().At(0).DoubleValue())

	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, afterShutdown, len(sink.AllMetrics()), "nothing is scraped after Shutdown")
}

// TestScrapeTargetDown: a target that does not answer gets up 0, as in Prometheus.
func TestScrapeTargetDown(t *testing.T) {
	target := httptest.NewServer(http.NotFoundHandler())
	u, _ := url.Parse(target.URL)
	target.Close() // nothing listens there any more
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, confmap.NewFromStringMap(map[string]any{
		"config": map[string]any{
			"global":         map[string]any{"scrape_interval": "100ms", "scrape_timeout": "100ms"},
			"scrape_configs": []any{map[string]any{"job_name": "down", "static_configs": []any{map[string]any{"targets": []any{u.Host}}}}},
		},
	}).Unmarshal(cfg))
	sink := new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(mdata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	require.Eventually(t, func() bool { return len(sink.AllMetrics()) >= 1 }, 30*time.Second, 20*time.Millisecond)
	up := findMetric(t, sink.AllMetrics()[0], "down", u.Host, "up")
	assert.Equal(t, 0.0, up.Gauge().DataPoints().At(0).DoubleValue())
}
