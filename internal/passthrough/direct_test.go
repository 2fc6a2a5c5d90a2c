package passthrough

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
)

type nopWriter struct{ name string }

func (nopWriter) WriteSeries(context.Context, []Series) error { return nil }

func pipelines(p map[string]any) *confmap.Conf {
	return confmap.NewFromStringMap(map[string]any{
		"receivers": map[string]any{"remote_write": nil},
		"service":   map[string]any{"pipelines": p},
	})
}

func pipe(receivers, processors, exporters []any) map[string]any {
	return map[string]any{"receivers": receivers, "processors": processors, "exporters": exporters}
}

// TestRoutes: a receiver writes directly only when it is in exactly one metrics pipeline, with
// no processor and exactly one exporter, which has registered its writer.
func TestRoutes(t *testing.T) {
	rw := component.MustNewID("remote_write")
	w := nopWriter{"metricstor"}
	for _, tc := range []struct {
		name      string
		pipelines map[string]any
		receiver  component.ID
		want      SeriesWriter
		why       string
	}{
		{name: "default", pipelines: map[string]any{"metrics": pipe([]any{"otlp", "remote_write"}, nil, []any{"metricstor"})}, want: w},
		{name: "empty processors", pipelines: map[string]any{"metrics": pipe([]any{"remote_write"}, []any{}, []any{"metricstor"})}, want: w},
		{name: "other signals ignored", pipelines: map[string]any{
			"metrics": pipe([]any{"remote_write"}, nil, []any{"metricstor"}),
			"traces":  pipe([]any{"remote_write"}, nil, []any{"debug"}),
		}, want: w},
		{name: "processor", pipelines: map[string]any{"metrics": pipe([]any{"remote_write"}, []any{"memory_limiter"}, []any{"metricstor"})},
			why: "pipeline metrics has processors (memory_limiter)"},
		{name: "second exporter", pipelines: map[string]any{"metrics": pipe([]any{"remote_write"}, nil, []any{"metricstor", "debug"})},
			why: "pipeline metrics has 2 exporters, not one"},
		{name: "two pipelines", pipelines: map[string]any{
			"metrics":     pipe([]any{"remote_write"}, nil, []any{"metricstor"}),
			"metrics/raw": pipe([]any{"remote_write"}, nil, []any{"metricstor"}),
		}, why: "it is in 2 metrics pipelines (metrics, metrics/raw), not one"},
		{name: "exporter not registered", pipelines: map[string]any{"metrics": pipe([]any{"remote_write"}, nil, []any{"metricstor/queued"})},
			why: "exporter metricstor/queued of pipeline metrics is not a metricstor exporter writing to this store without sending queue and retries"},
		{name: "another receiver", pipelines: map[string]any{"metrics": pipe([]any{"remote_write"}, nil, []any{"metricstor"})},
			receiver: component.MustNewIDWithName("remote_write", "b"), why: "it is in 0 metrics pipelines (), not one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Routes
			got, why := r.SeriesWriter(rw)
			assert.Nil(t, got)
			assert.Equal(t, "the collector's configuration is not known", why)

			r.Register(component.MustNewID("metricstor"), w)
			require.NoError(t, r.SetConfig(pipelines(tc.pipelines)))
			id := tc.receiver
			if id == (component.ID{}) {
				id = rw
			}
			got, why = r.SeriesWriter(id)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.why, why)

			r.Register(component.MustNewID("metricstor"), nil)
			got, _ = r.SeriesWriter(id)
			assert.Nil(t, got, "after the exporter unregistered")
		})
	}
}
