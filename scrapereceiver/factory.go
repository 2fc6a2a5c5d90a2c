package scrapereceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/metricstor/metricstor/scrapereceiver/internal/metadata"
)

// NewFactory returns the factory of the prometheus (scrape) receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

// createDefaultConfig has no Prometheus configuration: `config:` is required (Validate).
func createDefaultConfig() component.Config { return &Config{DirectWrite: true} }

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newScrapeReceiver(cfg.(*Config), set, next)
}
