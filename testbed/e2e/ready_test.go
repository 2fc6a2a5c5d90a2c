package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestReadyMeansWritable: the first 200 from /-/ready comes only once every receiver listens, so
// a client that waits for it can push at once. The extensions start before the pipelines, and
// /-/ready used to answer 200 from the promql extension's Start: here the rules extension,
// which starts after it, parses 20,000 rules first, which keeps the receivers from listening
// for a while. /-/ready is polled as fast as it answers: it must say 503 meanwhile, and the
// pushes right after its first 200 must be stored and read back.
func TestReadyMeansWritable(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	var rules strings.Builder
	for g := range 200 {
		fmt.Fprintf(&rules, "- name: g%d\n  rules:\n", g)
		for r := range 100 {
			fmt.Fprintf(&rules, "  - record: r_%d_%d\n    expr: vector(%d)\n", g, r, r)
		}
	}
	rulePath := filepath.Join(t.TempDir(), "many.yml")
	if err := os.WriteFile(rulePath, []byte("groups:\n"+rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.RulesYAML = fmt.Sprintf("rule_files: [%q]\nevaluation_interval: 1h\n", rulePath)
	proc := harness.Start(t, "metricstor", binary, "--config", cfg.Write(t))

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(time.Minute)
	var unready int // answers other than 200 once the API listened
	for {
		if proc.Exited() {
			t.Fatalf("exited before it was ready:\n%s", proc.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("/-/ready not 200 within a minute:\n%s", proc.Output())
		}
		resp, err := client.Get(cfg.Ports.PromQLURL() + "/-/ready")
		if err != nil {
			time.Sleep(time.Millisecond)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("/-/ready: %s, want 503 or 200", resp.Status)
		}
		unready++
	}
	// No wait here: every listener of a pipeline accepts now.
	for name, addr := range map[string]string{
		"remote_write": harness.Addr(cfg.RemoteWrite),
		"OTLP gRPC":    cfg.Ports.OTLPGRPCAddr(),
	} {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Errorf("%s receiver at %s after the first 200 from /-/ready: %v", name, addr, err)
			continue
		}
		_ = conn.Close()
	}
	if unready == 0 {
		t.Errorf("/-/ready answered 200 at once: it did not wait for the pipelines")
	}
	f := newFixture("ready-1", startTime())
	pushSteps(t, pushHTTP, cfg.Ports, f, 0, steps)
	t.Logf("/-/ready answered 503 %d times before its first 200", unready)
	checkReadBack(t, newAPI(t, cfg.Ports), []fixture{f})
}
