package queryext

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/metricstor/metricstor/internal/metadatatest"
	"github.com/metricstor/metricstor/queryext/internal/metadata"
)

// metadata.yaml is the single source of the extension's type, stability and telemetry (it declares
// none).
func TestMetadataYAML(t *testing.T) {
	md := metadatatest.Read(t, "metadata.yaml")
	md.CheckFactory(t, NewFactory())

	tel := metadatatest.NewTelemetry(t)
	set := extension.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel.Settings()}
	ext, err := NewFactory().Create(context.Background(), set, NewFactory().CreateDefaultConfig())
	require.NoError(t, err)
	tel.CheckInstruments(t, md, metadata.ScopeName)
	require.NoError(t, ext.Shutdown(context.Background()))
}
