package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BinaryEnv names the environment variable that overrides the path of the binary under test.
const BinaryEnv = "METRICSTOR_BINARY"

const rootModule = "module github.com/metricstor/metricstor\n"

// Binary returns the absolute path of the otelcol-metricstor binary: $METRICSTOR_BINARY if set,
// else <repo>/bin/otelcol-metricstor. It fails the test (it does not skip) when the file is
// missing, telling to run `make build`.
func Binary(t testing.TB) string {
	t.Helper()
	path := os.Getenv(BinaryEnv)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatalf("locate the otelcol-metricstor binary: %v", err)
		}
		path = filepath.Join(root, "bin", "otelcol-metricstor")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatalf("locate the otelcol-metricstor binary: %v", err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		t.Fatalf("otelcol-metricstor binary not found at %s (%v): run `make build` in the repository root first, or set %s", abs, err, BinaryEnv)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("%s is not an executable file: run `make build` in the repository root first, or set %s", abs, BinaryEnv)
	}
	return abs
}

// RepoRoot returns the directory of the root go.mod (module github.com/metricstor/metricstor),
// searching upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), rootModule) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of github.com/metricstor/metricstor above the working directory")
		}
		dir = parent
	}
}
