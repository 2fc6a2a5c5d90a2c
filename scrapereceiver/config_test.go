package scrapereceiver

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

	"github.com/metricstor/metricstor/scrapereceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	load := func(t *testing.T, name string) (*Config, error) {
		t.Helper()
		sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
		require.NoError(t, err)
		cfg := createDefaultConfig().(*Config)
		return cfg, sub.Unmarshal(cfg)
	}

	t.Run("valid", func(t *testing.T) {
		cfg, err := load(t, "")
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		// What the collector runs: Validate of every exported field too (Prometheus's config
		// types have Validate methods that fail on a loaded config).
		require.NoError(t, confmap.Validate(cfg))
		scs, err := cfg.PrometheusConfig().GetScrapeConfigs()
		require.NoError(t, err)
		require.Len(t, scs, 3)
		node := scs[0]
		assert.Equal(t, "node", node.JobName)
		assert.Equal(t, model.Duration(15*time.Second), node.ScrapeInterval)
		assert.Equal(t, model.Duration(10*time.Second), node.ScrapeTimeout)
		require.Len(t, node.MetricRelabelConfigs, 1)
		assert.Equal(t, "node_scrape_collector_.*", node.MetricRelabelConfigs[0].Regex.String())
		assert.Len(t, scs[1].ServiceDiscoveryConfigs, 1, "file_sd_configs")
		assert.Equal(t, "file", scs[1].ServiceDiscoveryConfigs[0].Name())
		assert.Equal(t, "http", scs[2].ServiceDiscoveryConfigs[0].Name())
		assert.True(t, cfg.DirectWrite, "direct_write defaults to true")
	})

	t.Run("pipeline_data", func(t *testing.T) {
		cfg, err := load(t, "pipeline_data")
		require.NoError(t, err)
		require.NoError(t, cfg.Validate())
		assert.False(t, cfg.DirectWrite)
	})

	unmarshalErrs := map[string]string{
		"unknown_key":      `unknown setting "target_allocator"`,
		"bad_direct_write": `'direct_write' expected type 'bool', got unconvertible type 'string'`,
		"bad_interval":     `scrape timeout greater than scrape interval for scrape config with job name "a"`,
		// Only static, file and http service discovery are linked into the distribution.
		"kubernetes": "field kubernetes_sd_configs not found in type config.ScrapeConfig",
	}
	for name, msg := range unmarshalErrs {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, name)
			require.Error(t, err)
			assert.Contains(t, err.Error(), msg)
			if name == "kubernetes" {
				assert.Contains(t, err.Error(), "service discovery supported by this distribution: static_configs, file_sd_configs, http_sd_configs")
			}
		})
	}

	validateErrs := map[string]string{
		"empty":             "config is required: a Prometheus configuration with scrape_configs",
		"rules":             "config: not supported by the prometheus receiver: rule_files (use the rules extension)",
		"no_scrape_configs": "config: no scrape_configs: nothing to scrape",
	}
	for name, msg := range validateErrs {
		t.Run(name, func(t *testing.T) {
			cfg, err := load(t, name)
			require.NoError(t, err)
			assert.EqualError(t, cfg.Validate(), msg)
		})
	}
}
