package conformance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/metricstor/metricstor/testbed/harness"
)

// DataDir is the folder, relative to the repository root, of the project's own copy of the query
// set and of the demo sample (see its README.md for where they come from and their license).
const DataDir = "testbed/conformance/testdata"

// Dir returns the folder holding promql-test-queries.yml, variant-args.yml and
// demo-metrics-sample.txt: DataDir in the repository root. The tests read nothing outside the
// repository.
func Dir() (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(DataDir)), nil
}

// Case is one expanded test case of the query set.
type Case struct {
	Query string
	// ShouldFail is true when the reference answers the query with an error: the case passes
	// when the system under test fails too.
	ShouldFail bool
}

// queryFile is the schema of promql-test-queries.yml (prometheus/compliance's test_cases).
type queryFile struct {
	TestCases []struct {
		Query       string   `yaml:"query"`
		VariantArgs []string `yaml:"variant_args"`
		ShouldFail  bool     `yaml:"should_fail"`
	} `yaml:"test_cases"`
}

// LoadCases reads promql-test-queries.yml and variant-args.yml from dir and expands every query
// over all combinations of the values of its variant_args, in the order of the file and, within
// a query, with the last variant argument varying fastest (as prometheus/compliance does).
func LoadCases(dir string) ([]Case, error) {
	var qf queryFile
	if err := readYAML(filepath.Join(dir, "promql-test-queries.yml"), &qf); err != nil {
		return nil, err
	}
	var args map[string][]string
	if err := readYAML(filepath.Join(dir, "variant-args.yml"), &args); err != nil {
		return nil, err
	}
	var cases []Case
	for i, tc := range qf.TestCases {
		if len(tc.VariantArgs) == 0 {
			cases = append(cases, Case{Query: tc.Query, ShouldFail: tc.ShouldFail})
			continue
		}
		tmpl, err := template.New("query").Option("missingkey=error").Parse(tc.Query)
		if err != nil {
			return nil, fmt.Errorf("test case %d %q: %w", i, tc.Query, err)
		}
		combos := []map[string]string{{}}
		for _, name := range tc.VariantArgs {
			values, ok := args[name]
			if !ok || len(values) == 0 {
				return nil, fmt.Errorf("test case %d %q: no values for variant arg %q in variant-args.yml", i, tc.Query, name)
			}
			next := make([]map[string]string, 0, len(combos)*len(values))
			for _, c := range combos {
				for _, v := range values {
					m := make(map[string]string, len(c)+1)
					for k, x := range c {
						m[k] = x
					}
					m[name] = v
					next = append(next, m)
				}
			}
			combos = next
		}
		for _, c := range combos {
			var buf bytes.Buffer
			if err := tmpl.Execute(&buf, c); err != nil {
				return nil, fmt.Errorf("test case %d %q: %w", i, tc.Query, err)
			}
			cases = append(cases, Case{Query: buf.String(), ShouldFail: tc.ShouldFail})
		}
	}
	return cases, nil
}

func readYAML(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the query set: %w (it is kept in %s)", err, DataDir)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}
