package rules

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/metricstor/metricstor/rules/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	custom := createDefaultConfig().(*Config)
	custom.PromQL = component.MustNewIDWithName("promql", "main")
	custom.RuleFiles = []string{"/etc/metricstor/rules/*.yml", "/etc/metricstor/alerts.yml"}
	custom.EvaluationInterval = 30 * time.Second
	custom.QueryOffset = 15 * time.Second
	custom.ExternalLabels = map[string]string{"cluster": "eu-1", "replica": "a"}
	custom.ExternalURL = "https://metricstor.example.com"
	custom.Alertmanagers = []string{"http://alertmanager:9093", "https://am.example.com/prefix"}
	custom.AlertmanagerTimeout = 5 * time.Second
	custom.ResendDelay = 2 * time.Minute
	custom.FileCheckInterval = 0

	tests := []struct {
		id       component.ID
		expected component.Config
		errMsgs  []string
	}{
		{id: component.NewID(metadata.Type), expected: createDefaultConfig()},
		{id: component.NewIDWithName(metadata.Type, "custom"), expected: custom},
		{id: component.NewIDWithName(metadata.Type, "all_bad"), errMsgs: []string{
			"rule_files: a pattern is empty",
			`rule_files: invalid glob "[bad": syntax error in pattern`,
			"evaluation_interval: must be positive (got 0s)",
			"query_offset: must not be negative (got -1s)",
			`external_labels: invalid label name ""`,
			`external_labels: label "env" has an empty value`,
			`external_url: URL "ftp://x": scheme must be http or https`,
			`alertmanagers: URL "alertmanager:9093": scheme must be http or https`,
			`alertmanagers: URL "http://": has no host`,
			`alertmanagers: URL "http://am:9093/?a=b": must have no query or fragment`,
			"alertmanager_timeout: must be positive (got 0s)",
			"resend_delay: must be positive (got 0s)",
			"file_check_interval: must not be negative (got -1s)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = cfg.(*Config).Validate()
			if len(tt.errMsgs) > 0 {
				require.Error(t, err)
				for _, m := range tt.errMsgs {
					assert.Contains(t, err.Error(), m)
				}
				assert.Len(t, splitLines(err.Error()), len(tt.errMsgs), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, cfg.Validate())
	assert.Equal(t, time.Minute, cfg.EvaluationInterval, "Prometheus's default evaluation_interval")
	assert.Equal(t, time.Duration(0), cfg.QueryOffset)
	assert.Empty(t, cfg.RuleFiles)
	assert.Equal(t, "promql", cfg.PromQL.String())
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
