package receiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/metricstor/metricstor/receiver/internal/metadata"
)

const (
	defaultEndpoint            = "127.0.0.1:9201"
	defaultMetadataCacheSize   = 100_000
	defaultMaxRequestBodySize  = 20 << 20 // confighttp's own default, made explicit
	defaultMaxSeriesPerRequest = 1_000_000
)

// NewFactory returns the factory of the remote_write receiver.
func NewFactory() receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		createDefaultConfig,
		receiver.WithMetrics(createMetrics, metadata.MetricsStability),
	)
}

func createDefaultConfig() component.Config {
	srv := confighttp.NewDefaultServerConfig()
	srv.NetAddr.Endpoint = defaultEndpoint
	srv.CompressionAlgorithms = []string{"", "snappy"}
	srv.MaxRequestBodySize = defaultMaxRequestBodySize
	return &Config{
		ServerConfig:        srv,
		MetadataCacheSize:   defaultMetadataCacheSize,
		MaxSeriesPerRequest: defaultMaxSeriesPerRequest,
		DirectWrite:         true,
	}
}

func createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	return newRemoteWriteReceiver(cfg.(*Config), set, next)
}
