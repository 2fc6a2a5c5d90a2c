package receiver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver"

	"github.com/metricstor/metricstor/internal/metadatatest"
	"github.com/metricstor/metricstor/receiver/internal/metadata"
)

// metadata.yaml is the single source of the receiver's type, stability and telemetry (it declares
// none of its own: the receiverhelper's otelcol_receiver_* metrics are the collector's).
func TestMetadataYAML(t *testing.T) {
	md := metadatatest.Read(t, "metadata.yaml")
	md.CheckFactory(t, NewFactory())

	tel := metadatatest.NewTelemetry(t)
	set := receiver.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel.Settings()}
	rcv, err := NewFactory().CreateMetrics(context.Background(), set, NewFactory().CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(t, err)
	tel.CheckInstruments(t, md, metadata.ScopeName)
	require.NoError(t, rcv.Shutdown(context.Background()))
}
