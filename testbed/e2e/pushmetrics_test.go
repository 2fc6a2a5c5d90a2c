package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestPushMetricsExample runs examples/pushmetrics as its README shows (`go run
// ./examples/pushmetrics`, pointed at this binary's ports) and reads its series and metadata back
// through the query API.
func TestPushMetricsExample(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: the go command is not on PATH, and the test runs the example with `go run` as the README does; it runs in `make e2e`, which itself runs under go")
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	c := harness.NewCollector(t, "metricstor", harness.Binary(t), cfg)
	c.Start()
	defer c.Stop(time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // compiling the example
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "run", "./examples/pushmetrics",
		"-url", cfg.RemoteWriteURL(), "-query-url", cfg.Ports.PromQLURL())
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./examples/pushmetrics: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pushed 3 series, 15 samples and metadata of 2 families") {
		t.Errorf("unexpected output:\n%s", out)
	}

	api := newAPI(t, cfg.Ports)
	v, _, _, err := api.Query(queryCtx(t), `demo_requests_total{job="pushmetrics"}`, time.Now())
	if err != nil {
		t.Fatal(apiError(err))
	}
	got := map[string]float64{}
	for _, s := range v.(model.Vector) {
		got[string(s.Metric["code"])] = float64(s.Value)
	}
	// The example's counters end at 100+30*4 (code 200) and 2+4 (code 500).
	if want := map[string]float64{"200": 220, "500": 6}; len(got) != 2 || got["200"] != want["200"] || got["500"] != want["500"] {
		t.Errorf("demo_requests_total by code: got %v, want %v", got, want)
	}
	md, err := api.Metadata(queryCtx(t), "demo_temperature_celsius", "")
	if err != nil {
		t.Fatal(apiError(err))
	}
	if m := md["demo_temperature_celsius"]; len(m) != 1 || m[0].Type != "gauge" || m[0].Unit != "celsius" {
		t.Errorf("metadata of demo_temperature_celsius: %+v", m)
	}
}
