package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/metricstor/metricstor/testbed/harness"
)

// RWComplianceEnv names the environment variable that overrides the path of the compiled remote
// write receiver suite; by default it is the one testbed/scripts/install-rwcompliance.sh builds.
const RWComplianceEnv = "RWCOMPLIANCE_BINARY"

const rwComplianceVersion = "v0.0.0-20260806071727-67b8327a2e93"

// rwComplianceCases is the number of cases the suite at rwComplianceVersion runs against one
// receiver (one leaf subtest each). Fewer passes than this fail the test, so a case the suite
// stops running cannot go unnoticed; a new suite version updates the number.
const rwComplianceCases = 205

func rwComplianceBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv(RWComplianceEnv)
	if path == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(root, "bin", "tools", "rwcompliance-"+rwComplianceVersion, "receiver.test")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("remote write compliance suite not found (%v): run testbed/scripts/install-rwcompliance.sh (make e2e does), or set %s", err, RWComplianceEnv)
	}
	return path
}

// TestRemoteWriteCompliance runs prometheus/compliance's remote write receiver suite (1.0 and
// 2.0: protocol, content types, status codes, Written headers, histograms, exemplars, metadata)
// against the binary on its default config.yaml: every case must pass.
func TestRemoteWriteCompliance(t *testing.T) {
	suite := rwComplianceBinary(t)
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	proc := harness.StartReady(t, "metricstor (remote write compliance)", binary, configPath, ports)
	waitListening(t, proc, url)

	dir := t.TempDir()
	suiteConfig := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(suiteConfig, []byte("remote_write:\n  - name: metricstor\n    url: "+url+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(suite, "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PROMETHEUS_RW2_COMPLIANCE_CONFIG_FILE="+suiteConfig)
	out, runErr := cmd.CombinedOutput()

	leaf := regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+/metricstor) `)
	counts := map[string]int{}
	var failed []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := leaf.FindStringSubmatch(sc.Text()); m != nil {
			counts[m[1]]++
			if m[1] != "PASS" {
				failed = append(failed, m[1]+" "+m[2])
			}
		}
	}
	t.Logf("remote write receiver suite %s: %d passed, %d failed, %d skipped", rwComplianceVersion, counts["PASS"], counts["FAIL"], counts["SKIP"])
	if runErr != nil || len(failed) > 0 || counts["PASS"] < rwComplianceCases {
		t.Fatalf("suite exit: %v; not passed: %s; passed %d of %d cases\n%s", runErr, strings.Join(failed, ", "), counts["PASS"], rwComplianceCases, tail(out, 8000))
	}
}

// tail returns the last n bytes of b, for a failure message.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
