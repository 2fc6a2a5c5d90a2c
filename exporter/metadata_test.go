package exporter

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
	"github.com/metricstor/metricstor/internal/metadatatest"
)

// metadata.yaml is the single source of the exporter's type, stability and telemetry: the code
// declares exactly what it says, and its reject reasons are the declared ones.
func TestMetadataYAML(t *testing.T) {
	md := metadatatest.Read(t, "metadata.yaml")
	md.CheckFactory(t, NewFactory())

	tel := metadatatest.NewTelemetry(t)
	set := exporter.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel.Settings()}
	exp, err := NewFactory().CreateMetrics(context.Background(), set, createDefaultConfig())
	require.NoError(t, err)
	tel.CheckInstruments(t, md, metadata.ScopeName)
	require.NoError(t, exp.Shutdown(context.Background()))

	var reasons []string
	for r := range numRejectReasons {
		reasons = append(reasons, r.String())
	}
	md.CheckEnum(t, "reason", reasons)
}
