package rules

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/metricstor/metricstor/internal/metadatatest"
	"github.com/metricstor/metricstor/rules/internal/metadata"
)

// metadata.yaml is the single source of the extension's type, stability and telemetry: the code
// declares exactly what it says, with the declared reload results.
func TestMetadataYAML(t *testing.T) {
	md := metadatatest.Read(t, "metadata.yaml")
	md.CheckFactory(t, NewFactory())

	tel := metadatatest.NewTelemetry(t)
	tt, err := newTelemetry(tel.Settings(), prometheus.NewRegistry())
	require.NoError(t, err)
	defer func() { require.NoError(t, tt.shutdown()) }()
	tt.reloaded(true)
	tt.reloaded(false)
	tel.CheckInstruments(t, md, metadata.ScopeName)
	observed := tel.Observed(t, metadata.ScopeName)
	md.CheckEnum(t, "result", observed["metricstor_rules_reloads"]["result"])
	assert.Contains(t, observed, "metricstor_rules_reloads")
}
