package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/extension"

	"github.com/metricstor/metricstor/queryext/internal/metadata"
)

const (
	defaultEndpoint   = "127.0.0.1:9090"
	defaultTimeout    = 2 * time.Minute
	defaultMaxSamples = 50_000_000
	// 1,000 series at Prometheus's most steps per series (11,000): about 330 MB of JSON.
	defaultMaxPointsPerRangeQuery = 11_000_000
	defaultLookbackDelta          = 5 * time.Minute
	defaultMaxConcurrency         = 20
	// Prometheus's --storage.remote.read-sample-limit, -concurrent-limit, -max-bytes-in-frame.
	defaultRemoteReadSampleLimit     = 50_000_000
	defaultRemoteReadConcurrentLimit = 10
	defaultRemoteReadMaxBytesInFrame = 1 << 20
)

// defaultStorageID is the ID under which the distribution's config.yaml declares the store.
var defaultStorageID = component.MustNewID("metricstor")

// NewFactory returns the factory of the promql extension.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	server := confighttp.NewDefaultServerConfig()
	server.NetAddr.Endpoint = defaultEndpoint
	// Queries may legitimately run up to `timeout`; Prometheus puts no write deadline on its
	// API either.
	server.WriteTimeout = 0
	return &Config{
		ServerConfig:           server,
		Storage:                defaultStorageID,
		Timeout:                defaultTimeout,
		MaxSamples:             defaultMaxSamples,
		MaxPointsPerRangeQuery: defaultMaxPointsPerRangeQuery,
		LookbackDelta:          defaultLookbackDelta,
		MaxConcurrency:         defaultMaxConcurrency,
		RemoteRead: RemoteReadConfig{
			SampleLimit:     defaultRemoteReadSampleLimit,
			ConcurrentLimit: defaultRemoteReadConcurrentLimit,
			MaxBytesInFrame: defaultRemoteReadMaxBytesInFrame,
		},
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set), nil
}
