package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/metricstor/metricstor/testbed/harness"
)

// checkREADMEExamples keeps a section of README.md true to the example files the tests run: each
// YAML block of the section whose first line is `# examples/<dir>/<file>...` must be that file
// byte for byte, and every file of want must be shown. It returns the repository root.
func checkREADMEExamples(t *testing.T, heading, dir string, want []string) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## "+heading+"\n")
	if start < 0 {
		t.Fatalf("README.md has no %q section", "## "+heading)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	shown := map[string]bool{}
	for _, b := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(section, -1) {
		name, ok := strings.CutPrefix(strings.SplitN(b[1], "\n", 2)[0], "# examples/"+dir+"/")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, ":")
		file, err := os.ReadFile(filepath.Join(root, "examples", dir, name))
		if err != nil {
			t.Errorf("README.md shows examples/%s/%s: %v", dir, name, err)
			continue
		}
		if b[1] != string(file) {
			t.Errorf("README.md's copy of examples/%s/%s differs from the file: copy the file into the README", dir, name)
		}
		shown[name] = true
	}
	for _, name := range want {
		if !shown[name] {
			t.Errorf("README.md's %s section does not show examples/%s/%s", heading, dir, name)
		}
	}
	return root
}
