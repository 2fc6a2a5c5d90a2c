package storage

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/metricstor/metricstor/storage/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig()
	custom.Directory = "/var/lib/metricstor"
	custom.Retention = model.Duration(30 * 24 * time.Hour)
	custom.PartitionDuration = model.Duration(2 * time.Hour)
	custom.OutOfOrderWindow = model.Duration(90 * time.Minute)
	custom.CacheSizeMiB = 256
	custom.SyncCommits = true
	custom.MinFreeSpaceMiB = 512

	forever := createDefaultConfig()
	forever.Retention = 0

	tests := []struct {
		id       component.ID
		expected *Config
		errMsg   string
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{id: component.NewIDWithName(metadata.Type, "keep_forever"), expected: forever},
		{
			id:     component.NewIDWithName(metadata.Type, "short_retention"),
			errMsg: "retention: must be 0 (keep everything) or at least partition_duration 1d (got 1h)",
		},
		{
			id: component.NewIDWithName(metadata.Type, "all_bad"),
			errMsg: "directory: must not be empty\n" +
				"partition_duration: must be at least 1m (got 30s)\n" +
				"min_free_space_mib: must be -1 (off), 0 (default) or a size in MiB (got -2)\n" +
				"cache_size_mib: must be at least 1 (got 0)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			if tt.errMsg != "" {
				require.EqualError(t, cfg.Validate(), tt.errMsg)
				assert.ErrorContains(t, confmap.Validate(cfg), tt.errMsg)
				return
			}
			require.NoError(t, cfg.Validate())
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, "./data", cfg.Directory)
	assert.Equal(t, 15*24*time.Hour, time.Duration(cfg.Retention))
	assert.Equal(t, 24*time.Hour, time.Duration(cfg.PartitionDuration))
	assert.Equal(t, 10*time.Minute, time.Duration(cfg.OutOfOrderWindow))
	assert.Equal(t, 32, cfg.CacheSizeMiB)
}

func TestLoadConfigRejectsNegativeDurations(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub("metricstor/negative_retention")
	require.NoError(t, err)
	err = sub.Unmarshal(createDefaultConfig())
	require.ErrorContains(t, err, `'retention' not a valid duration string: "-1h"`)
}

func TestValidateNegativeDurations(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Retention = model.Duration(-time.Hour)
	cfg.OutOfOrderWindow = model.Duration(-time.Minute)
	require.EqualError(t, cfg.Validate(), "retention: must not be negative (got -1h)\n"+
		"out_of_order_window: must not be negative (got -1m)")
}
