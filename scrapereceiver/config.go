package scrapereceiver

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	promconfig "github.com/prometheus/prometheus/config"
	"go.opentelemetry.io/collector/confmap"
	"go.yaml.in/yaml/v2"

	// The service discovery mechanisms this receiver supports, besides static_configs (part of
	// the discovery package): each registers its *_sd_configs key with Prometheus's config
	// parser. discovery/install (every mechanism) is not linked: it pulls in every cloud SDK.
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
)

// configKey is the receiver's main setting: a Prometheus configuration.
const configKey = "config"

// directWriteKey is the receiver's other setting, as the remote_write receiver's direct_write.
const directWriteKey = "direct_write"

// sdNotLinked matches Prometheus's error for a *_sd_configs key of a mechanism that is not
// linked into the binary.
var sdNotLinked = regexp.MustCompile(`field \w+_sd_configs not found`)

// Config is the receiver's configuration: `config:` holds a Prometheus configuration file's
// `global` and `scrape_configs` (and `scrape_config_files`), in Prometheus's own YAML.
type Config struct {
	// prometheusConfig is the parsed `config:` block; nil when it is missing. Unexported: the
	// collector validates every exported field that has a Validate method, and Prometheus's
	// config types have some that only hold after Prometheus's own defaulting (an empty
	// fallback scrape protocol is invalid for them, yet means "none" in a loaded config).
	prometheusConfig *promconfig.Config

	// DirectWrite (key `direct_write`, default true): when the configuration shows that nothing
	// but the metricstor exporter sees the receiver's data, each scrape's series go to it
	// without pipeline data, as the remote_write receiver's setting of that name does.
	DirectWrite bool
}

// PrometheusConfig returns the parsed Prometheus configuration, nil when `config:` is missing.
func (c *Config) PrometheusConfig() *promconfig.Config { return c.prometheusConfig }

// Unmarshal parses `config:` with Prometheus's config package (strictly: an unknown key, or a
// service discovery mechanism this build does not contain, is an error naming it), so that it
// means exactly what it means in prometheus.yml.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	raw := conf.ToStringMap()
	for k := range raw {
		if k != configKey && k != directWriteKey {
			return fmt.Errorf("unknown setting %q: the prometheus receiver's settings are %q, a Prometheus configuration (global, scrape_configs), and %q", k, configKey, directWriteKey)
		}
	}
	if _, ok := raw[directWriteKey]; ok {
		// Decoded by confmap, as every other component's settings are (a value from an
		// environment variable included), into a struct of just that key.
		var dw struct {
			DirectWrite bool `mapstructure:"direct_write"`
		}
		dw.DirectWrite = c.DirectWrite
		if err := confmap.NewFromStringMap(map[string]any{directWriteKey: raw[directWriteKey]}).Unmarshal(&dw); err != nil {
			return err
		}
		c.DirectWrite = dw.DirectWrite
	}
	v, ok := raw[configKey]
	if !ok || v == nil {
		return nil
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: %w", configKey, err)
	}
	pc, err := promconfig.Load(string(out), slog.New(slog.DiscardHandler))
	if err != nil {
		// Line numbers in Prometheus's message count lines of `config:` as re-serialized here
		// (keys sorted), not of the collector's file: say so, and name what SD is linked.
		hint := " (line numbers count within `config:`, keys sorted)"
		if sdNotLinked.MatchString(err.Error()) {
			hint += "; service discovery supported by this distribution: static_configs, file_sd_configs, http_sd_configs"
		}
		return fmt.Errorf("%s: invalid Prometheus configuration%s: %w", configKey, hint, err)
	}
	c.prometheusConfig = pc
	return nil
}

// Validate checks that there is something to scrape and that no part of the Prometheus
// configuration would be silently ignored: rules, alerting and remote read/write belong to
// other components of the distribution.
func (c *Config) Validate() error {
	pc := c.prometheusConfig
	if pc == nil {
		return fmt.Errorf("%s is required: a Prometheus configuration with scrape_configs", configKey)
	}
	var unsupported []string
	if len(pc.RuleFiles) > 0 {
		unsupported = append(unsupported, "rule_files (use the rules extension)")
	}
	if len(pc.AlertingConfig.AlertmanagerConfigs) > 0 || len(pc.AlertingConfig.AlertRelabelConfigs) > 0 {
		unsupported = append(unsupported, "alerting (use the rules extension)")
	}
	if len(pc.RemoteWriteConfigs) > 0 {
		unsupported = append(unsupported, "remote_write (use the prometheusremotewrite exporter)")
	}
	if len(pc.RemoteReadConfigs) > 0 {
		unsupported = append(unsupported, "remote_read")
	}
	if len(unsupported) > 0 {
		return fmt.Errorf("%s: not supported by the prometheus receiver: %s", configKey, strings.Join(unsupported, ", "))
	}
	scs, err := pc.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("%s: scrape_configs: %w", configKey, err)
	}
	if len(scs) == 0 {
		return errors.New(configKey + ": no scrape_configs: nothing to scrape")
	}
	var jobs []string
	for _, sc := range scs {
		if slices.Contains(jobs, sc.JobName) {
			return fmt.Errorf("%s: scrape_configs: job_name %q is used twice", configKey, sc.JobName)
		}
		jobs = append(jobs, sc.JobName)
	}
	return nil
}
