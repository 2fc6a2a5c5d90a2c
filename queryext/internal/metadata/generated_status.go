// Hand-written to match what mdatagen v0.165.0 generates from ../../metadata.yaml: mdatagen is not
// served by the module proxy available to this project. Keep it in sync with metadata.yaml: metadata_test.go (internal/metadatatest) fails when they differ.

package metadata // import "github.com/metricstor/metricstor/queryext/internal/metadata"

import (
	"go.opentelemetry.io/collector/component"
)

var (
	// Type is the component type name of the extension.
	Type = component.MustNewType("promql")
	// ScopeName is the instrumentation scope name of the extension's own telemetry.
	ScopeName = "github.com/metricstor/metricstor/queryext"
)

const (
	// ExtensionStability is the stability level of the extension.
	ExtensionStability = component.StabilityLevelDevelopment
)
