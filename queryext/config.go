package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
)

// Config is the configuration of the promql extension.
type Config struct {
	// ServerConfig is the HTTP server: endpoint (default 127.0.0.1:9090), TLS, auth, CORS, body
	// limits, timeouts. write_timeout defaults to 0 (none, like Prometheus); when set it must exceed
	// `timeout` so that a slow query can still send its answer.
	confighttp.ServerConfig `mapstructure:",squash"`

	// Storage is the ID of the metricstor storage extension to read from. Default: metricstor.
	Storage component.ID `mapstructure:"storage"`

	// Timeout is the longest a query may run before it fails with errorType timeout (HTTP 503).
	// A request's own `timeout` parameter can only shorten it. Default: 2m.
	Timeout time.Duration `mapstructure:"timeout"`

	// MaxSamples is the largest number of samples one query may hold in memory at once; more fails
	// with errorType execution (HTTP 422). Default: 50000000 (as Prometheus).
	MaxSamples int `mapstructure:"max_samples"`

	// MaxPointsPerRangeQuery is the most points (float and histogram samples of all its series)
	// the result of one range query may hold; more fails with errorType execution (HTTP 422).
	// Prometheus's own limit of 11,000 steps per series (errorType bad_data, HTTP 400) applies as
	// well. Default: 11000000 (1,000 series at 11,000 steps).
	MaxPointsPerRangeQuery int `mapstructure:"max_points_per_range_query"`

	// LookbackDelta is how far back an instant selector looks for the latest sample. A request's
	// `lookback_delta` parameter overrides it. Default: 5m.
	LookbackDelta time.Duration `mapstructure:"lookback_delta"`

	// MaxConcurrency is the number of queries evaluated at the same time; more wait for a slot
	// (their wait counts against their timeout). Default: 20 (as Prometheus).
	MaxConcurrency int `mapstructure:"max_concurrency"`

	// RangeQueryParallelism is the most parts a long range query (at least 200 steps) is split
	// into, ranges of consecutive steps evaluated at the same time by Prometheus's engine and
	// joined into the same answer; 1 evaluates every query whole, as Prometheus does. 0 means
	// the number of CPUs the process may use (GOMAXPROCS) when the extension starts. Default: 0.
	RangeQueryParallelism int `mapstructure:"range_query_parallelism"`

	// EnableAdminAPI serves Prometheus's admin endpoints (as Prometheus's --web.enable-admin-api):
	// POST /api/v1/admin/tsdb/snapshot writes a snapshot of the store under
	// <storage directory>/snapshots; delete_series answers 501 (the store has no tombstones) and
	// clean_tombstones succeeds with nothing to do. Off (the default), they answer errorType
	// unavailable, "admin APIs disabled", as Prometheus does. Default: false.
	EnableAdminAPI bool `mapstructure:"enable_admin_api"`

	// RemoteRead holds the limits of /api/v1/read, Prometheus's --storage.remote.read-* flags.
	RemoteRead RemoteReadConfig `mapstructure:"remote_read"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// RemoteReadConfig is the limits of the remote read endpoint, with Prometheus's defaults.
type RemoteReadConfig struct {
	// SampleLimit is the most samples one query of a request may return in a SAMPLES response;
	// more fails the request with 400 "exceeded sample limit". 0 means no limit. Streamed
	// (STREAMED_XOR_CHUNKS) responses are not counted: they are sent a frame at a time.
	// Prometheus: --storage.remote.read-sample-limit, default 5e7.
	SampleLimit int `mapstructure:"sample_limit"`

	// ConcurrentLimit is the number of remote read requests served at once; more wait for a slot
	// until the client gives up. Prometheus: --storage.remote.read-concurrent-limit, default 10.
	// Prometheus documents 0 as "no limit", but its handler then waits forever on a gate of size
	// zero: here it must be positive.
	ConcurrentLimit int `mapstructure:"concurrent_limit"`

	// MaxBytesInFrame is the size of the chunks of series a streamed response puts in one frame
	// before sending it. Prometheus: --storage.remote.read-max-bytes-in-frame, default 1048576.
	MaxBytesInFrame int `mapstructure:"max_bytes_in_frame"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// maxRangeQueryParallelism bounds range_query_parallelism: each part is a goroutine, a select and
// a max_concurrency slot of its own.
const maxRangeQueryParallelism = 64

// rangeQueryParts is the number of parts range_query_parallelism asks for.
func (cfg *Config) rangeQueryParts() int {
	if cfg.RangeQueryParallelism == 0 {
		return runtime.GOMAXPROCS(0)
	}
	return cfg.RangeQueryParallelism
}

// Validate checks the configuration without touching the outside world. It reports every
// violation at once, each naming the key and the offending value.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.NetAddr.Endpoint == "" {
		errs = append(errs, errors.New("endpoint: must not be empty"))
	}
	if cfg.Storage.Type().String() == "" {
		errs = append(errs, errors.New("storage: must name the metricstor storage extension (got empty)"))
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive (got %s)", cfg.Timeout))
	}
	if cfg.MaxSamples <= 0 {
		errs = append(errs, fmt.Errorf("max_samples: must be positive (got %d)", cfg.MaxSamples))
	}
	if cfg.MaxPointsPerRangeQuery <= 0 {
		errs = append(errs, fmt.Errorf("max_points_per_range_query: must be positive (got %d)", cfg.MaxPointsPerRangeQuery))
	}
	if cfg.LookbackDelta <= 0 {
		errs = append(errs, fmt.Errorf("lookback_delta: must be positive (got %s)", cfg.LookbackDelta))
	}
	if cfg.MaxConcurrency <= 0 {
		errs = append(errs, fmt.Errorf("max_concurrency: must be positive (got %d)", cfg.MaxConcurrency))
	}
	if cfg.RangeQueryParallelism < 0 || cfg.RangeQueryParallelism > maxRangeQueryParallelism {
		errs = append(errs, fmt.Errorf("range_query_parallelism: must be 0 (the number of CPUs), 1 (off) or up to %d parts (got %d)",
			maxRangeQueryParallelism, cfg.RangeQueryParallelism))
	}
	if cfg.RemoteRead.SampleLimit < 0 {
		errs = append(errs, fmt.Errorf("remote_read::sample_limit: must not be negative, 0 for no limit (got %d)", cfg.RemoteRead.SampleLimit))
	}
	if cfg.RemoteRead.ConcurrentLimit <= 0 {
		errs = append(errs, fmt.Errorf("remote_read::concurrent_limit: must be positive (got %d)", cfg.RemoteRead.ConcurrentLimit))
	}
	if cfg.RemoteRead.MaxBytesInFrame <= 0 {
		errs = append(errs, fmt.Errorf("remote_read::max_bytes_in_frame: must be positive (got %d)", cfg.RemoteRead.MaxBytesInFrame))
	}
	if cfg.WriteTimeout < 0 {
		errs = append(errs, fmt.Errorf("write_timeout: must not be negative (got %s)", cfg.WriteTimeout))
	} else if cfg.WriteTimeout > 0 && cfg.Timeout > 0 && cfg.WriteTimeout <= cfg.Timeout {
		errs = append(errs, fmt.Errorf("write_timeout: must be 0 (none) or longer than timeout %s (got %s)", cfg.Timeout, cfg.WriteTimeout))
	}
	return errors.Join(errs...)
}
