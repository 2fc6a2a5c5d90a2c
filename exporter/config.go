package exporter

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// Config is the configuration of the metricstor exporter. The translation keys mean what the keys
// of the same name mean in Prometheus's `otlp:` configuration block.
type Config struct {
	// Timeout bounds one attempt to convert and commit a batch (key `timeout`, default 5s).
	exporterhelper.TimeoutConfig `mapstructure:",squash"`
	// QueueConfig is the exporterhelper sending queue (key `sending_queue`). Disabled by default:
	// with the queue on, an acknowledgement no longer means the data is stored.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// RetryConfig retries retryable failures (store not running or refusing writes, failed
	// commit); key `retry_on_failure`, disabled by default (the sender retries; see factory.go).
	RetryConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	// Storage is the component ID of the metricstor storage extension (default `metricstor`).
	Storage component.ID `mapstructure:"storage"`

	// TranslationStrategy decides metric and label name escaping and unit/type suffixes:
	// UnderscoreEscapingWithSuffixes (default), UnderscoreEscapingWithoutSuffixes,
	// NoUTF8EscapingWithSuffixes or NoTranslation.
	TranslationStrategy otlptranslator.TranslationStrategyOption `mapstructure:"translation_strategy"`
	// PromoteResourceAttributes lists resource attributes copied to labels of every series of the
	// resource (default none).
	PromoteResourceAttributes []string `mapstructure:"promote_resource_attributes"`
	// PromoteAllResourceAttributes copies every resource attribute to labels except those in
	// IgnoreResourceAttributes (default false).
	PromoteAllResourceAttributes bool `mapstructure:"promote_all_resource_attributes"`
	// IgnoreResourceAttributes lists resource attributes not promoted when
	// PromoteAllResourceAttributes is on (default none).
	IgnoreResourceAttributes []string `mapstructure:"ignore_resource_attributes"`
	// KeepIdentifyingResourceAttributes keeps service.name, service.namespace and
	// service.instance.id as labels of target_info besides job and instance (default false).
	KeepIdentifyingResourceAttributes bool `mapstructure:"keep_identifying_resource_attributes"`
	// ConvertHistogramsToNHCB stores explicit-bucket histograms as native histograms with custom
	// buckets instead of classic _bucket/_sum/_count series (default false).
	ConvertHistogramsToNHCB bool `mapstructure:"convert_histograms_to_nhcb"`
	// PromoteScopeMetadata adds otel_scope_name, otel_scope_version, otel_scope_schema_url and
	// otel_scope_<attribute> labels (default false).
	PromoteScopeMetadata bool `mapstructure:"promote_scope_metadata"`
	// TargetInfo writes a target_info series per resource carrying its attributes (default true).
	TargetInfo bool `mapstructure:"target_info"`
	// AllowDeltaTemporality stores delta sums and histograms as they come, with metric type
	// unknown (Prometheus's native delta ingestion). When false (default) such metrics are rejected.
	AllowDeltaTemporality bool `mapstructure:"allow_delta_temporality"`
	// EnableTypeAndUnitLabels adds __type__ and __unit__ labels to every series (default false).
	EnableTypeAndUnitLabels bool `mapstructure:"enable_type_and_unit_labels"`
	// LabelNameUnderscoreSanitization prefixes label names that start with a single `_` with
	// `key` when names are escaped (default true, as in Prometheus).
	LabelNameUnderscoreSanitization bool `mapstructure:"label_name_underscore_sanitization"`
	// LabelNamePreserveMultipleUnderscores keeps runs of `_` in escaped label names instead of
	// collapsing them (default true, as in Prometheus).
	LabelNamePreserveMultipleUnderscores bool `mapstructure:"label_name_preserve_multiple_underscores"`
	// LookbackDelta is the query lookback delta; target_info samples are written every half of it
	// between the first and last sample of a resource in a batch (default 5m, as PromQL's default).
	LookbackDelta time.Duration `mapstructure:"lookback_delta"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration without side effects. Errors name the key and the value.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.Storage == (component.ID{}) {
		errs = append(errs, errors.New("storage: must name the metricstor storage extension"))
	}
	switch cfg.TranslationStrategy {
	case otlptranslator.UnderscoreEscapingWithSuffixes, otlptranslator.UnderscoreEscapingWithoutSuffixes,
		otlptranslator.NoUTF8EscapingWithSuffixes, otlptranslator.NoTranslation:
	default:
		errs = append(errs, fmt.Errorf("translation_strategy: unknown value %q (want one of %s, %s, %s, %s)",
			cfg.TranslationStrategy, otlptranslator.UnderscoreEscapingWithSuffixes,
			otlptranslator.UnderscoreEscapingWithoutSuffixes, otlptranslator.NoUTF8EscapingWithSuffixes,
			otlptranslator.NoTranslation))
	}
	if cfg.PromoteAllResourceAttributes && len(cfg.PromoteResourceAttributes) > 0 {
		errs = append(errs, errors.New("promote_resource_attributes: cannot be set when promote_all_resource_attributes is true"))
	}
	if !cfg.PromoteAllResourceAttributes && len(cfg.IgnoreResourceAttributes) > 0 {
		errs = append(errs, errors.New("ignore_resource_attributes: only allowed when promote_all_resource_attributes is true"))
	}
	errs = append(errs, validateAttributeList("promote_resource_attributes", cfg.PromoteResourceAttributes)...)
	errs = append(errs, validateAttributeList("ignore_resource_attributes", cfg.IgnoreResourceAttributes)...)
	if cfg.LookbackDelta <= 0 {
		errs = append(errs, fmt.Errorf("lookback_delta: must be positive (got %s)", cfg.LookbackDelta))
	}
	return errors.Join(errs...)
}

// validateAttributeList rejects empty and duplicate names; names are compared after trimming
// surrounding spaces, as Prometheus does.
func validateAttributeList(key string, attrs []string) []error {
	var errs []error
	seen := make(map[string]struct{}, len(attrs))
	for i, attr := range attrs {
		name := strings.TrimSpace(attr)
		if name == "" {
			errs = append(errs, fmt.Errorf("%s: empty attribute name at index %d", key, i))
			continue
		}
		if _, dup := seen[name]; dup {
			errs = append(errs, fmt.Errorf("%s: duplicate attribute %q", key, name))
			continue
		}
		seen[name] = struct{}{}
	}
	return errs
}
