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
	custom.MemoryLimitMiB = 2048
	custom.CacheSizeMiB = 256
	custom.SyncCommits = true
	custom.MinFreeSpaceMiB = 512
	custom.RetentionSize = "512GB"
	custom.Limits = LimitsConfig{LabelsPerSeries: 40, LabelNameLength: 128, LabelValueLength: 2048, ActiveSeries: 5_000_000}

	percent := createDefaultConfig()
	percent.RetentionSize = "80%"

	noLimits := createDefaultConfig()
	noLimits.Limits = LimitsConfig{}

	noMemoryLimit := createDefaultConfig()
	noMemoryLimit.MemoryLimitMiB = 0

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
		{id: component.NewIDWithName(metadata.Type, "percent"), expected: percent},
		{id: component.NewIDWithName(metadata.Type, "no_limits"), expected: noLimits},
		{id: component.NewIDWithName(metadata.Type, "no_memory_limit"), expected: noMemoryLimit},
		{
			id:     component.NewIDWithName(metadata.Type, "cache_over_budget"),
			errMsg: "cache_size_mib: must be at most half of memory_limit_mib 128 (got 100)",
		},
		{
			id: component.NewIDWithName(metadata.Type, "bad_limits"),
			errMsg: `retention_size: must be 0, a size such as 512MB or 10GB, or a percentage of the filesystem such as 80% (got "10 apples")` + "\n" +
				"limits::labels_per_series: must be 0 (no limit) or positive (got -1)\n" +
				"limits::active_series: must be 0 (no limit) or positive (got -5)",
		},
		{
			id:     component.NewIDWithName(metadata.Type, "bad_percent"),
			errMsg: `retention_size: a percentage must be above 0% and at most 100% (got "120%")`,
		},
		{
			id:     component.NewIDWithName(metadata.Type, "short_retention"),
			errMsg: "retention: must be 0 (keep everything) or at least partition_duration 1d (got 1h)",
		},
		{
			id: component.NewIDWithName(metadata.Type, "all_bad"),
			errMsg: "directory: must not be empty\n" +
				"partition_duration: must be at least 1m (got 30s)\n" +
				"min_free_space_mib: must be -1 (off), 0 (default) or a size in MiB (got -2)\n" +
				"memory_limit_mib: must be 0 (no limit) or at least 64 (got 10)\n" +
				"cache_size_mib: must be 0 (an eighth of memory_limit_mib) or a size in MiB (got -1)",
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
	assert.Equal(t, 140, cfg.MemoryLimitMiB)
	assert.Equal(t, 0, cfg.CacheSizeMiB, "an eighth of memory_limit_mib")
	assert.Equal(t, "0", cfg.RetentionSize, "no size retention, as Prometheus")
	assert.Equal(t, LimitsConfig{LabelsPerSeries: 64, LabelNameLength: 1024, LabelValueLength: 16384, ActiveSeries: 1_000_000}, cfg.Limits)
}

func TestParseRetentionSize(t *testing.T) {
	for _, tt := range []struct {
		in       string
		bytes    int64
		fraction float64
		err      string
	}{
		{in: ""}, {in: "0"}, {in: "0B"},
		{in: "512MB", bytes: 512 << 20}, {in: "10GB", bytes: 10 << 30}, {in: "1.5GiB", bytes: 3 << 29}, {in: "1TB", bytes: 1 << 40},
		{in: "80%", fraction: 0.8}, {in: "100%", fraction: 1}, {in: "0.5%", fraction: 0.005},
		{in: "0%", err: "a percentage must be above 0%"}, {in: "101%", err: "at most 100%"}, {in: "x%", err: "percentage"},
		{in: "10", err: `(got "10")`}, {in: "10kB", err: "512MB"}, {in: "-1GB", err: "512MB"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			b, f, err := parseRetentionSize(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.bytes, b)
			assert.InDelta(t, tt.fraction, f, 1e-12)
		})
	}
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
