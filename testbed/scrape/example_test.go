package scrape

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestExampleConfig runs examples/scrape/config.yaml as shipped, only with free ports, a
// temporary data directory and the test's node_exporter-style target in place of 127.0.0.1:9100:
// the collector scrapes its own telemetry and the node target, and both come back from PromQL.
func TestExampleConfig(t *testing.T) {
	binary := harness.Binary(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(root, "examples", "scrape", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	node := newTarget(t, textFormat, nodeMetrics)
	ports := harness.FreePorts(t, 2)
	promql, telemetry := ports[0], ports[1]
	cfg := string(text)
	// One pass over the text, so that no pair reads what an earlier one wrote (a port).
	pairs := []string{
		`"127.0.0.1:8888"`, fmt.Sprintf("%q", harness.Addr(telemetry)),
		"port: 8888", fmt.Sprintf("port: %d", telemetry),
		`"127.0.0.1:9100"`, fmt.Sprintf("%q", node.addr()),
		"endpoint: 127.0.0.1:9090", "endpoint: " + harness.Addr(promql),
		"directory: ./data", fmt.Sprintf("directory: %q", filepath.Join(t.TempDir(), "data")),
		"scrape_interval: 15s", "scrape_interval: 1s",
		"scrape_timeout: 10s", "scrape_timeout: 1s",
	}
	for i := 0; i < len(pairs); i += 2 {
		if strings.Count(cfg, pairs[i]) != 1 {
			t.Fatalf("examples/scrape/config.yaml: want %q exactly once (the test rewrites it)", pairs[i])
		}
	}
	cfg = strings.NewReplacer(pairs...).Replace(cfg)
	path := harness.WriteFile(t, "config.yaml", cfg)
	base := "http://" + harness.Addr(promql)
	p := harness.Start(t, "otelcol-metricstor (examples/scrape)", binary, "--config", path)
	p.WaitFor(time.Minute, harness.HTTPProbe(base+"/-/ready"))
	t.Cleanup(func() { p.Stop(time.Minute) })

	// Each query must return exactly one series with the value wanted.
	checks := map[string]float64{
		`up{job="metricstor"}`:   1,
		`up{job="node"}`:         1,
		`node_load1{job="node"}`: 0.42,
		// The collector's own telemetry, scraped: the exporter's counter of stored samples, under
		// the name its exposition gives it (no _total there), as Prometheus stores it. (Not
		// exporterhelper's otelcol_exporter_sent_metric_points: the example's pipeline has no
		// processor, so the scrapes reach the exporter without pipeline data, which is what that
		// counter counts.)
		`count(metricstor_exporter_samples_accepted{job="metricstor", instance=~"127.0.0.1:.*"} > 0)`: 1,
		// The prometheus receiver's own telemetry: the points of its scrapes, accepted.
		`count(otelcol_receiver_accepted_metric_points{job="metricstor", receiver="prometheus", transport="http"} > 0)`: 1,
	}
	deadline := time.Now().Add(2 * time.Minute)
	for q, want := range checks {
		for {
			v, err := instant(base, q)
			if err == nil && len(v) == 1 && float64(v[0].Value) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v (err %v), want one series of value %v; output:\n%s", q, v, err, want, p.Output())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// Dropped by the example's metric_relabel_configs: never stored.
	if v, err := instant(base, `{__name__=~"node_scrape_collector_.*"}`); err != nil || len(v) != 0 {
		t.Errorf("node_scrape_collector_* should be dropped: %v %v", v, err)
	}
}
