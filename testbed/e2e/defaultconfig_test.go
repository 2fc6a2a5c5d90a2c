package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestDefaultConfig checks that config.yaml at the repository root is accepted by the binary
// (`validate`) and binds every listener to loopback.
func TestDefaultConfig(t *testing.T) {
	binary := harness.Binary(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "config.yaml")
	code, out := harness.RunToExit(t, binary, time.Minute, "validate", "--config", path)
	if code != 0 {
		t.Fatalf("%s validate --config %s: exit code %d:\n%s", binary, path, code, out)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`^\s*(endpoint|host):\s*(\S+)`)
	var found int
	for n, line := range strings.Split(string(data), "\n") {
		m := listen.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		found++
		if !strings.HasPrefix(m[2], "127.0.0.1") {
			t.Errorf("config.yaml:%d: %s %s is not on loopback 127.0.0.1", n+1, m[1], m[2])
		}
	}
	// OTLP gRPC, OTLP HTTP, remote_write, promql, telemetry.
	if found != 5 {
		t.Errorf("config.yaml: found %d endpoint/host settings, want 5", found)
	}
}
