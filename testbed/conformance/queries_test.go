package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metricstor/metricstor/testbed/harness"
)

// The query set and the demo sample are read from the repository's own copy: a clone of the
// project alone has everything its tests need.
func TestDirIsRepositoryCopy(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || rel != filepath.FromSlash(DataDir) {
		t.Fatalf("Dir() = %s, want %s inside the repository root %s", dir, DataDir, root)
	}
	for _, name := range []string{"promql-test-queries.yml", "variant-args.yml", "demo-metrics-sample.txt", "README.md"} {
		if info, err := os.Stat(filepath.Join(dir, name)); err != nil || !info.Mode().IsRegular() {
			t.Errorf("%s: want a regular file in %s (%v)", name, DataDir, err)
		}
	}
}

func TestLoadCasesQuerySet(t *testing.T) {
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) != 539 {
		t.Errorf("the query set expands to %d cases, want 539 (variant-args.yml says so)", len(cases))
	}
	seen := map[string]bool{}
	shouldFail := 0
	for _, c := range cases {
		if strings.Contains(c.Query, "{{") {
			t.Errorf("unexpanded template in %q", c.Query)
		}
		if seen[c.Query] {
			t.Errorf("duplicate case %q", c.Query)
		}
		seen[c.Query] = true
		if c.ShouldFail {
			shouldFail++
		}
	}
	if shouldFail != 3 {
		t.Errorf("%d cases should fail, want 3", shouldFail)
	}
	for _, q := range []string{"rate(demo_cpu_usage_seconds_total[1h])", "quantile_over_time(1.5, demo_memory_usage_bytes[1s])", "stdvar without(nonexistent) (demo_memory_usage_bytes)"} {
		if !seen[q] {
			t.Errorf("missing expanded case %q", q)
		}
	}
}

func TestLoadCasesExpansionOrder(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "promql-test-queries.yml", `test_cases:
  - query: 'up'
  - query: '{{.op}}(x[{{.range}}])'
    variant_args: [op, range]
  - query: 'bad('
    should_fail: true
`)
	write(t, dir, "variant-args.yml", "op: [a, b]\nrange: [1m, 5m]\n")
	cases, err := LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Case{{Query: "up"}, {Query: "a(x[1m])"}, {Query: "a(x[5m])"}, {Query: "b(x[1m])"}, {Query: "b(x[5m])"}, {Query: "bad(", ShouldFail: true}}
	if len(cases) != len(want) {
		t.Fatalf("got %v, want %v", cases, want)
	}
	for i := range want {
		if cases[i] != want[i] {
			t.Errorf("case %d: got %+v, want %+v", i, cases[i], want[i])
		}
	}
}

func TestLoadCasesUnknownVariantArg(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "promql-test-queries.yml", "test_cases:\n  - query: '{{.nope}}'\n    variant_args: [nope]\n")
	write(t, dir, "variant-args.yml", "op: [a]\n")
	_, err := LoadCases(dir)
	if err == nil || !strings.Contains(err.Error(), `no values for variant arg "nope"`) {
		t.Fatalf("got error %v, want one naming the variant arg", err)
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
