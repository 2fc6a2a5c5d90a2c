// Package serverbench is the server-level ingestion benchmark of DESIGN.md's goal table: it runs
// Metricstor (the built otelcol-metricstor binary) and the reference Prometheus as processes, one
// after the other, loads each with the same remote write 1.0 workload (testbed/loadgen), and
// measures the server's CPU per ingested sample (new series, then steady state) from
// /proc/<pid>/stat, its peak RSS (VmHWM) and the bytes of its data directory per sample, then
// checks with PromQL counts that every series and sample is there. Run it with `make
// bench-server`; the test skips unless METRICSTOR_SERVERBENCH=1.
package serverbench // import "github.com/metricstor/metricstor/testbed/serverbench"

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
)

// DirBreakdown returns the bytes under dir grouped by where they are and by file extension, sorted
// by name, as "name=bytes" items: "wal/other", "*.sst", "blocks/other" (Prometheus's blocks, whose
// directories are ULIDs), "data/small/other" (a data/ directory is split one level further, for
// VictoriaMetrics' parts and index).
func DirBreakdown(dir string) ([]string, error) {
	groups := map[string]int64{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		key := "other"
		if ext := filepath.Ext(rel); ext == ".log" || ext == ".sst" {
			key = "*" + ext
		}
		parts := strings.Split(rel, string(filepath.Separator))
		switch {
		case len(parts) == 1:
		case isULID(parts[0]):
			key = "blocks/" + key
		case parts[0] == "data" && len(parts) > 2:
			key = parts[0] + "/" + parts[1] + "/" + key
		default:
			key = parts[0] + "/" + key
		}
		groups[key] += info.Size()
		return nil
	})
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s=%d", k, groups[k])
	}
	return out, err
}

func isULID(name string) bool {
	if len(name) != 26 {
		return false
	}
	for _, c := range name {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
