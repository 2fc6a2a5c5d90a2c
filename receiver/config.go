package receiver

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
)

// Config is the configuration of the remote_write receiver.
type Config struct {
	// ServerConfig is the collector's standard HTTP server (endpoint, TLS, auth, CORS,
	// max_request_body_size, ...). Default endpoint 127.0.0.1:9201. `compression_algorithms`
	// defaults to ["", "snappy"] and may only contain those two: remote write bodies are snappy
	// block-compressed, with or without a Content-Encoding header.
	confighttp.ServerConfig `mapstructure:",squash"`

	// MetadataCacheSize bounds how many metric families of remote write 1.0 metadata the receiver
	// remembers to attach to later series of the same family (key `metadata_cache_size`, default
	// 100000). Prometheus sends 1.0 metadata in requests of its own, apart from the samples.
	MetadataCacheSize int `mapstructure:"metadata_cache_size"`

	// MaxSeriesPerRequest refuses, with 400 and nothing written, a request carrying more series
	// than this (key `max_series_per_request`, default 1000000; 0 means no limit). It bounds the
	// memory one request takes in the pipeline. Prometheus has no such limit; the default refuses
	// no request within the default max_request_body_size (20 MiB hold at most about 870,000
	// series of one sample each, 24 bytes per series with 2.0's interned labels).
	MaxSeriesPerRequest int `mapstructure:"max_series_per_request"`

	// DirectWrite lets the receiver hand its series straight to the metricstor exporter, without
	// building pipeline data, when the configuration shows that nothing else could see that data:
	// the receiver is in one metrics pipeline, which has no processor and one exporter, a
	// metricstor exporter without sending queue or retries (key `direct_write`, default true; the
	// default config.yaml is such a pipeline). The same series are written either way; a
	// sample costs about a third less CPU. With a processor in the pipeline the data goes
	// through it as always. false always builds pipeline data.
	DirectWrite bool `mapstructure:"direct_write"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration without side effects. Errors name the key and the value.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: must not be empty"))
	}
	for _, alg := range cfg.CompressionAlgorithms {
		if alg != "" && alg != "snappy" {
			errs = append(errs, fmt.Errorf(`compression_algorithms: remote write accepts only "" and "snappy" (got %q)`, alg))
		}
	}
	if cfg.MaxSeriesPerRequest < 0 {
		errs = append(errs, fmt.Errorf("max_series_per_request: must not be negative (got %d)", cfg.MaxSeriesPerRequest))
	}
	if cfg.MetadataCacheSize < 0 {
		errs = append(errs, fmt.Errorf("metadata_cache_size: must not be negative (got %d)", cfg.MetadataCacheSize))
	}
	return errors.Join(errs...)
}
