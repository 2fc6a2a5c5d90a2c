package exporter

import (
	"context"
	"time"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
)

// defaultStorageID is the ID of the storage extension the exporter writes to unless told otherwise.
var defaultStorageID = component.MustNewID("metricstor")

const (
	defaultTimeout       = 5 * time.Second
	defaultLookbackDelta = 5 * time.Minute
)

// NewFactory returns the factory of the metricstor exporter.
func NewFactory() exporter.Factory {
	return exporter.NewFactory(
		metadata.Type,
		createDefaultConfig,
		exporter.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

// defaultRetryConfig is configretry's default backoff, disabled. With the sending queue off (the
// default: an answer means stored), a retry inside the collector holds the sender's request while
// the store refuses writes (a full disk) until the backoff's 5 minutes run out, far past the
// exporter's timeout and the sender's. The senders retry themselves: Prometheus's remote write
// and OTLP clients back off and resend on 503 / Unavailable, as they do against Prometheus, which
// has no retry of its own either. Retries here belong with a sending queue.
func defaultRetryConfig() configretry.BackOffConfig {
	c := configretry.NewDefaultBackOffConfig()
	c.Enabled = false
	return c
}

func createDefaultConfig() component.Config {
	return &Config{
		TimeoutConfig:                        exporterhelper.TimeoutConfig{Timeout: defaultTimeout},
		QueueConfig:                          metadata.NewDefaultSendingQueueConfig(),
		RetryConfig:                          defaultRetryConfig(),
		Storage:                              defaultStorageID,
		TranslationStrategy:                  otlptranslator.UnderscoreEscapingWithSuffixes,
		TargetInfo:                           true,
		LabelNameUnderscoreSanitization:      true,
		LabelNamePreserveMultipleUnderscores: true,
		LookbackDelta:                        defaultLookbackDelta,
	}
}

func createMetrics(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Metrics, error) {
	c := cfg.(*Config)
	exp, err := newMetricstorExporter(c, set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	exp.id = set.ID
	return exporterhelper.NewMetrics(ctx, set, cfg, exp.pushMetrics,
		exporterhelper.WithStart(exp.start),
		exporterhelper.WithShutdown(exp.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
	)
}
