// Package metadata holds the type name and stability of the metricstor exporter.
//
// mdatagen v0.165 would generate this file from ../../metadata.yaml, but it is not served by the
// module proxy available to this project, so the file is written by hand to match what mdatagen
// generates. Keep it in sync with metadata.yaml: metadata_test.go (internal/metadatatest) fails when they differ.
package metadata

import (
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

var (
	// Type is the component type name used in collector configuration.
	Type = component.MustNewType("metricstor")
	// ScopeName is the instrumentation scope of the exporter's own telemetry.
	ScopeName = "github.com/metricstor/metricstor/exporter"
)

const (
	// MetricsStability is the stability level of the metrics pipeline support.
	MetricsStability = component.StabilityLevelAlpha
)

// NewDefaultSendingQueueConfig returns the sending queue default declared in metadata.yaml: present
// but disabled (an acknowledgement must mean stored), with batching disabled too when a user turns the
// queue on without configuring a batch.
func NewDefaultSendingQueueConfig() configoptional.Optional[exporterhelper.QueueBatchConfig] {
	cfg := exporterhelper.NewDefaultQueueConfig()
	batchCfg := *cfg.Batch.GetOrInsertDefault()
	cfg.Batch = configoptional.Default(batchCfg)
	return configoptional.Default(cfg)
}
