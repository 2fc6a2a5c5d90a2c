package exporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)

	defaults := func() *Config { return createDefaultConfig().(*Config) }

	tests := []struct {
		id      component.ID
		want    *Config
		wantErr string
	}{
		{
			id:   component.NewID(metadata.Type),
			want: defaults(),
		},
		{
			id: component.NewIDWithName(metadata.Type, "custom"),
			want: func() *Config {
				cfg := defaults()
				cfg.Storage = component.MustNewIDWithName("metricstor", "other")
				cfg.TimeoutConfig = exporterhelper.TimeoutConfig{Timeout: 2 * time.Second}
				cfg.RetryConfig.Enabled = false
				q := metadata.NewDefaultSendingQueueConfig()
				qc := q.GetOrInsertDefault()
				qc.NumConsumers = 2
				qc.QueueSize = 500
				cfg.QueueConfig = configoptional.Some(*qc)
				cfg.TranslationStrategy = otlptranslator.NoUTF8EscapingWithSuffixes
				cfg.PromoteAllResourceAttributes = true
				cfg.IgnoreResourceAttributes = []string{"k8s.pod.uid", " process.pid "}
				cfg.KeepIdentifyingResourceAttributes = true
				cfg.ConvertHistogramsToNHCB = true
				cfg.PromoteScopeMetadata = true
				cfg.TargetInfo = false
				cfg.AllowDeltaTemporality = true
				cfg.EnableTypeAndUnitLabels = true
				cfg.LabelNameUnderscoreSanitization = false
				cfg.LabelNamePreserveMultipleUnderscores = false
				cfg.LookbackDelta = time.Minute
				return cfg
			}(),
		},
		{
			id: component.NewIDWithName(metadata.Type, "promote"),
			want: func() *Config {
				cfg := defaults()
				cfg.TranslationStrategy = otlptranslator.UnderscoreEscapingWithoutSuffixes
				cfg.PromoteResourceAttributes = []string{"deployment.environment", "k8s.namespace.name"}
				return cfg
			}(),
		},
		{
			id:      component.NewIDWithName(metadata.Type, "bad_strategy"),
			wantErr: `translation_strategy: unknown value "foo" (want one of UnderscoreEscapingWithSuffixes, UnderscoreEscapingWithoutSuffixes, NoUTF8EscapingWithSuffixes, NoTranslation)`,
		},
		{
			id:      component.NewIDWithName(metadata.Type, "promote_conflict"),
			wantErr: "promote_resource_attributes: cannot be set when promote_all_resource_attributes is true",
		},
		{
			id:      component.NewIDWithName(metadata.Type, "ignore_without_all"),
			wantErr: "ignore_resource_attributes: only allowed when promote_all_resource_attributes is true",
		},
		{
			id: component.NewIDWithName(metadata.Type, "bad_attributes"),
			wantErr: "promote_resource_attributes: empty attribute name at index 1\n" +
				`promote_resource_attributes: duplicate attribute "host.name"`,
		},
		{
			id:      component.NewIDWithName(metadata.Type, "bad_lookback"),
			wantErr: "lookback_delta: must be positive (got 0s)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := createDefaultConfig().(*Config)
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))

			err = cfg.Validate()
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, componenttest.CheckConfigStruct(cfg))
	require.NoError(t, cfg.Validate())

	assert.Equal(t, component.MustNewID("metricstor"), cfg.Storage)
	assert.Equal(t, 5*time.Second, cfg.Timeout)
	assert.False(t, cfg.QueueConfig.HasValue(), "the sending queue must be off by default: an ack means stored")
	retry := configretry.NewDefaultBackOffConfig()
	retry.Enabled = false
	assert.Equal(t, retry, cfg.RetryConfig, "no retry inside the collector by default: the sender's request would wait past every timeout")
	assert.Equal(t, otlptranslator.UnderscoreEscapingWithSuffixes, cfg.TranslationStrategy)
	assert.True(t, cfg.TargetInfo)
	assert.True(t, cfg.LabelNameUnderscoreSanitization)
	assert.True(t, cfg.LabelNamePreserveMultipleUnderscores)
	assert.Equal(t, 5*time.Minute, cfg.LookbackDelta)
}

func TestValidateEmptyStorage(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.Storage = component.ID{}
	require.EqualError(t, cfg.Validate(), "storage: must name the metricstor storage extension")
}

func TestTranslatorSettings(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	s := translatorSettings(cfg)
	assert.True(t, s.AddMetricSuffixes)
	assert.False(t, s.AllowUTF8)
	assert.False(t, s.DisableTargetInfo)
	assert.False(t, s.AllowDeltaTemporality)
	assert.True(t, s.LabelNameUnderscoreSanitization)
	assert.True(t, s.LabelNamePreserveMultipleUnderscores)
	assert.Equal(t, 5*time.Minute, s.LookbackDelta)

	for strategy, want := range map[otlptranslator.TranslationStrategyOption][2]bool{ // {suffixes, utf8}
		otlptranslator.UnderscoreEscapingWithSuffixes:    {true, false},
		otlptranslator.UnderscoreEscapingWithoutSuffixes: {false, false},
		otlptranslator.NoUTF8EscapingWithSuffixes:        {true, true},
		otlptranslator.NoTranslation:                     {false, true},
	} {
		cfg.TranslationStrategy = strategy
		s := translatorSettings(cfg)
		assert.Equal(t, want, [2]bool{s.AddMetricSuffixes, s.AllowUTF8}, strategy)
	}
}
