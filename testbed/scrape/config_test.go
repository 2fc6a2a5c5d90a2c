package scrape

import (
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestScrapeConfigErrors: the binary refuses a prometheus receiver configuration it cannot honour
// at startup, with a message naming what is wrong, instead of ignoring part of it.
func TestScrapeConfigErrors(t *testing.T) {
	binary := harness.Binary(t)
	for name, tc := range map[string]struct{ config, want string }{
		"service discovery not linked": {
			config: "scrape_configs:\n        - job_name: k8s\n          kubernetes_sd_configs:\n            - role: pod",
			want:   "field kubernetes_sd_configs not found in type config.ScrapeConfig",
		},
		"rule files belong to the rules extension": {
			config: "rule_files: [rules.yml]\n      scrape_configs:\n        - job_name: a\n          static_configs:\n            - targets: [\"127.0.0.1:9100\"]",
			want:   "rule_files (use the rules extension)",
		},
		"timeout over interval": {
			config: "scrape_configs:\n        - job_name: a\n          scrape_interval: 1s\n          scrape_timeout: 2s\n          static_configs:\n            - targets: [\"127.0.0.1:9100\"]",
			want:   `scrape timeout greater than scrape interval for scrape config with job name "a"`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := "receivers:\n  prometheus:\n    config:\n      " + tc.config + `
exporters:
  debug: {}
service:
  pipelines:
    metrics:
      receivers: [prometheus]
      exporters: [debug]
`
			path := harness.WriteFile(t, "config.yaml", cfg)
			p := harness.Start(t, "otelcol-metricstor validate", binary, "validate", "--config", path)
			if !p.WaitExit(time.Minute) {
				t.Fatal("validate did not exit")
			}
			if p.ExitCode() == 0 {
				t.Fatalf("validate accepted the configuration:\n%s", cfg)
			}
			if out := p.Output(); !strings.Contains(out, tc.want) || !strings.Contains(out, "prometheus") {
				t.Errorf("output does not name the problem (%q) and the receiver:\n%s", tc.want, out)
			}
		})
	}
}
