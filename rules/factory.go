package rules // import "github.com/metricstor/metricstor/rules"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/metricstor/metricstor/rules/internal/metadata"
)

// Prometheus's defaults.
const (
	defaultEvaluationInterval  = time.Minute
	defaultAlertmanagerTimeout = 10 * time.Second
	defaultResendDelay         = time.Minute
	defaultFileCheckInterval   = 30 * time.Second
)

// defaultPromQLID is the ID under which the distribution's config.yaml declares the query API.
var defaultPromQLID = component.MustNewID("promql")

// NewFactory returns the factory of the rules extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	return &Config{
		PromQL:              defaultPromQLID,
		EvaluationInterval:  defaultEvaluationInterval,
		AlertmanagerTimeout: defaultAlertmanagerTimeout,
		ResendDelay:         defaultResendDelay,
		FileCheckInterval:   defaultFileCheckInterval,
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}
