package storage

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"

	"github.com/metricstor/metricstor/internal/metadatatest"
	compmetadata "github.com/metricstor/metricstor/storage/internal/metadata"
)

// metadata.yaml is the single source of the extension's type, stability and telemetry: the code
// declares exactly what it says, and reports every declared reason.
func TestMetadataYAML(t *testing.T) {
	md := metadatatest.Read(t, "metadata.yaml")
	md.CheckFactory(t, NewFactory())

	tel := metadatatest.NewTelemetry(t)
	cfg := createDefaultConfig()
	cfg.Directory = t.TempDir()
	set := extension.Settings{ID: component.NewID(compmetadata.Type), TelemetrySettings: tel.Settings()}
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()

	tel.CheckInstruments(t, md, compmetadata.ScopeName)
	// The callback observes every reason on each collection, zeros included, so what it reports is
	// all the code knows.
	observed := tel.Observed(t, compmetadata.ScopeName)
	md.CheckEnum(t, "reject_reason", observed["metricstor_storage_samples_rejected"]["reason"])
	md.CheckEnum(t, "drop_reason", observed["metricstor_storage_partitions_dropped"]["reason"])
	assert.Len(t, observed, len(md.Telemetry.Metrics), "every declared metric reports")
}
