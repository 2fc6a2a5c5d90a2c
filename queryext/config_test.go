package queryext

import (
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/metricstor/metricstor/queryext/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.NetAddr.Endpoint = "0.0.0.0:19090"
	custom.Storage = component.MustNewIDWithName("metricstor", "primary")
	custom.Timeout = 30 * time.Second
	custom.MaxSamples = 1000
	custom.MaxPointsPerRangeQuery = 5000
	custom.LookbackDelta = time.Minute
	custom.MaxConcurrency = 4
	custom.RangeQueryParallelism = 3
	custom.EnableAdminAPI = true
	custom.WriteTimeout = time.Minute
	custom.RemoteRead.SampleLimit = 0
	custom.RemoteRead.ConcurrentLimit = 2
	custom.RemoteRead.MaxBytesInFrame = 65536

	tests := []struct {
		id       component.ID
		expected component.Config
		errMsg   string
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{
			id:     component.NewIDWithName(metadata.Type, "zero_samples"),
			errMsg: "max_samples: must be positive (got 0)",
		},
		{
			id: component.NewIDWithName(metadata.Type, "all_bad"),
			errMsg: "endpoint: must not be empty\n" +
				"timeout: must be positive (got 0s)\n" +
				"max_samples: must be positive (got -1)\n" +
				"max_points_per_range_query: must be positive (got -2)\n" +
				"lookback_delta: must be positive (got -5m0s)\n" +
				"max_concurrency: must be positive (got 0)\n" +
				"range_query_parallelism: must be 0 (the number of CPUs), 1 (off) or up to 64 parts (got -1)\n" +
				"remote_read::sample_limit: must not be negative, 0 for no limit (got -1)\n" +
				"remote_read::concurrent_limit: must be positive (got 0)\n" +
				"remote_read::max_bytes_in_frame: must be positive (got 0)",
		},
		{
			id:     component.NewIDWithName(metadata.Type, "short_write_timeout"),
			errMsg: "write_timeout: must be 0 (none) or longer than timeout 2m0s (got 1m0s)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))

			if tt.errMsg != "" {
				require.EqualError(t, cfg.Validate(), tt.errMsg)
				// The collector validates through confmap, which must reach our Validate.
				assert.ErrorContains(t, confmap.Validate(cfg), tt.errMsg)
				return
			}
			require.NoError(t, cfg.Validate())
			require.NoError(t, confmap.Validate(cfg))
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, "127.0.0.1:9090", cfg.NetAddr.Endpoint)
	assert.Equal(t, component.MustNewID("metricstor"), cfg.Storage)
	assert.Equal(t, 2*time.Minute, cfg.Timeout)
	assert.Equal(t, 50_000_000, cfg.MaxSamples)
	assert.Equal(t, 11_000_000, cfg.MaxPointsPerRangeQuery)
	assert.Equal(t, 5*time.Minute, cfg.LookbackDelta)
	assert.Equal(t, 20, cfg.MaxConcurrency)
	assert.Zero(t, cfg.RangeQueryParallelism, "split long range queries over every CPU")
	assert.Equal(t, runtime.GOMAXPROCS(0), cfg.rangeQueryParts())
	assert.Equal(t, RemoteReadConfig{SampleLimit: 50_000_000, ConcurrentLimit: 10, MaxBytesInFrame: 1048576}, cfg.RemoteRead,
		"Prometheus's --storage.remote.read-* defaults")
	assert.Zero(t, cfg.WriteTimeout, "a query may run up to timeout; no write deadline by default")
	assert.NoError(t, cfg.Validate())
}

func TestValidateEmptyStorage(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = component.ID{}
	require.EqualError(t, cfg.Validate(), "storage: must name the metricstor storage extension (got empty)")
}

func TestValidateNegativeWriteTimeout(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.WriteTimeout = -time.Second
	require.EqualError(t, cfg.Validate(), "write_timeout: must not be negative (got -1s)")
}

func TestValidateRangeQueryParallelism(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	for _, n := range []int{0, 1, 2, 64} {
		cfg.RangeQueryParallelism = n
		require.NoError(t, cfg.Validate(), n)
	}
	cfg.RangeQueryParallelism = 65
	require.EqualError(t, cfg.Validate(), "range_query_parallelism: must be 0 (the number of CPUs), 1 (off) or up to 64 parts (got 65)")
	cfg.RangeQueryParallelism = 1
	assert.Equal(t, 1, cfg.rangeQueryParts())
}
