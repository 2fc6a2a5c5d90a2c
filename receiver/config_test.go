package receiver

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/metricstor/metricstor/receiver/internal/metadata"
)

func unmarshalInto(cfg component.Config, m map[string]any) error {
	return confmap.NewFromStringMap(m).Unmarshal(cfg)
}

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.NetAddr.Endpoint = "0.0.0.0:19201"
	custom.MaxRequestBodySize = 1 << 20
	custom.CompressionAlgorithms = []string{"snappy"}
	custom.MetadataCacheSize = 10
	custom.MaxSeriesPerRequest = 5000
	custom.DirectWrite = false

	tests := []struct {
		id       component.ID
		expected component.Config
		errMsg   string
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{
			id: component.NewIDWithName(metadata.Type, "bad"),
			errMsg: "endpoint: must not be empty\n" +
				`compression_algorithms: remote write accepts only "" and "snappy" (got "gzip")` + "\n" +
				`compression_algorithms: remote write accepts only "" and "snappy" (got "zstd")` + "\n" +
				"max_series_per_request: must not be negative (got -1)\n" +
				"metadata_cache_size: must not be negative (got -1)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			if tt.errMsg != "" {
				assert.EqualError(t, cfg.Validate(), tt.errMsg)
				return
			}
			require.NoError(t, cfg.Validate())
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Equal(t, "127.0.0.1:9201", cfg.NetAddr.Endpoint)
	assert.Equal(t, []string{"", "snappy"}, cfg.CompressionAlgorithms)
	assert.Equal(t, 100_000, cfg.MetadataCacheSize)
	assert.Equal(t, 1_000_000, cfg.MaxSeriesPerRequest)
	assert.True(t, cfg.DirectWrite)
	assert.Equal(t, int64(20<<20), cfg.MaxRequestBodySize)
	require.NoError(t, cfg.Validate())
}
