// Package metadata holds the type name and stability of the prometheus (scrape) receiver.
//
// mdatagen v0.165 would generate this file from ../../metadata.yaml, but it is not served by the
// module proxy available to this project, so the file is written by hand to match what mdatagen
// generates. Keep it in sync with metadata.yaml: metadata_test.go (internal/metadatatest) fails when they differ.
package metadata

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the component type name used in collector configuration.
	Type = component.MustNewType("prometheus")
	// ScopeName is the instrumentation scope of the receiver's own telemetry.
	ScopeName = "github.com/metricstor/metricstor/scrapereceiver"
)

const (
	// MetricsStability is the stability level of the metrics pipeline support.
	MetricsStability = component.StabilityLevelAlpha
)
