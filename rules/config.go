package rules // import "github.com/metricstor/metricstor/rules"

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/component"
)

// Config is the configuration of the rules extension. The keys follow Prometheus's: rule_files and
// the global evaluation_interval, rule_query_offset and external_labels, and the Alertmanagers of
// alerting.alertmanagers (given here as URLs).
type Config struct {
	// PromQL is the ID of the promql extension whose engine and store evaluate the rules and whose
	// API serves /api/v1/rules and /api/v1/alerts. Default: promql.
	PromQL component.ID `mapstructure:"promql"`

	// RuleFiles are paths or globs (filepath.Glob) of Prometheus rule files. Default: none.
	RuleFiles []string `mapstructure:"rule_files"`

	// EvaluationInterval is how often a rule group is evaluated unless it sets its own interval.
	// Default: 1m (as Prometheus).
	EvaluationInterval time.Duration `mapstructure:"evaluation_interval"`

	// QueryOffset is how far in the past rules are evaluated unless a group sets its own
	// query_offset (Prometheus's global rule_query_offset). Default: 0.
	QueryOffset time.Duration `mapstructure:"query_offset"`

	// ExternalLabels are added to alerts sent to Alertmanager (not to recording rule results, as in
	// Prometheus) and are available as $externalLabels in templates. Default: none.
	ExternalLabels map[string]string `mapstructure:"external_labels"`

	// ExternalURL is the base of alerts' generatorURL and of $externalURL in templates. Default:
	// the promql extension's address (http(s)://host:port, the machine's host name when it binds
	// every address).
	ExternalURL string `mapstructure:"external_url"`

	// Alertmanagers are the base URLs of the Alertmanagers alerts are sent to (API v2, POST
	// <url>/api/v2/alerts), e.g. http://alertmanager:9093 or https://host/prefix. Default: none,
	// alerts are evaluated and served but not sent.
	Alertmanagers []string `mapstructure:"alertmanagers"`

	// AlertmanagerTimeout is the timeout of one request to an Alertmanager. Default: 10s.
	AlertmanagerTimeout time.Duration `mapstructure:"alertmanager_timeout"`

	// ResendDelay is the least time between two sends of a firing alert. Default: 1m (as Prometheus).
	ResendDelay time.Duration `mapstructure:"resend_delay"`

	// FileCheckInterval is how often the rule files (the globs and the files' contents) are checked
	// for a change; a change that two checks in a row see reloads them. 0 turns the check off (SIGHUP still reloads: the
	// collector restarts every component on it). Default: 30s.
	FileCheckInterval time.Duration `mapstructure:"file_check_interval"`

	// prevent unkeyed literal initialization
	_ struct{}
}

var _ component.Config = (*Config)(nil)

// Validate checks the configuration without touching the outside world (the rule files are
// parsed at Start). It reports every violation at once, each naming the key and the value.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.PromQL.Type().String() == "" {
		errs = append(errs, errors.New("promql: must name the promql extension (got empty)"))
	}
	for _, pat := range cfg.RuleFiles {
		if pat == "" {
			errs = append(errs, errors.New("rule_files: a pattern is empty"))
		} else if _, err := filepath.Match(pat, ""); err != nil {
			errs = append(errs, fmt.Errorf("rule_files: invalid glob %q: %w", pat, err))
		}
	}
	if cfg.EvaluationInterval <= 0 {
		errs = append(errs, fmt.Errorf("evaluation_interval: must be positive (got %s)", cfg.EvaluationInterval))
	}
	if cfg.QueryOffset < 0 {
		errs = append(errs, fmt.Errorf("query_offset: must not be negative (got %s)", cfg.QueryOffset))
	}
	names := make([]string, 0, len(cfg.ExternalLabels))
	for name := range cfg.ExternalLabels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !model.UTF8Validation.IsValidLabelName(name) {
			errs = append(errs, fmt.Errorf("external_labels: invalid label name %q", name))
		}
		if cfg.ExternalLabels[name] == "" {
			errs = append(errs, fmt.Errorf("external_labels: label %q has an empty value", name))
		}
	}
	if cfg.ExternalURL != "" {
		if err := checkURL(cfg.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("external_url: %w", err))
		}
	}
	for _, am := range cfg.Alertmanagers {
		if err := checkURL(am); err != nil {
			errs = append(errs, fmt.Errorf("alertmanagers: %w", err))
		}
	}
	if cfg.AlertmanagerTimeout <= 0 {
		errs = append(errs, fmt.Errorf("alertmanager_timeout: must be positive (got %s)", cfg.AlertmanagerTimeout))
	}
	if cfg.ResendDelay <= 0 {
		errs = append(errs, fmt.Errorf("resend_delay: must be positive (got %s)", cfg.ResendDelay))
	}
	if cfg.FileCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("file_check_interval: must not be negative (got %s)", cfg.FileCheckInterval))
	}
	return errors.Join(errs...)
}

// checkURL accepts an absolute http or https URL with a host and no query or fragment.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q: scheme must be http or https", s)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q: has no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("URL %q: must have no query or fragment", s)
	}
	return nil
}
