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
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ClockTicks returns the kernel's clock ticks per second (getconf CLK_TCK), 100 when getconf
// is missing or answers nonsense.
func ClockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// CPUTicks returns utime+stime of process pid, in clock ticks, from /proc/<pid>/stat (fields
// 14 and 15; the command name, field 2, may contain spaces and parentheses, so fields are counted
// after its last ')').
func CPUTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, s)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state), so field n is fields[n-3].
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// StatusKB returns a field of /proc/<pid>/status given in kB (VmHWM, VmRSS), in bytes.
func StatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected %q", pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb * 1024, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// DirBytes returns the total size of the regular files under dir (apparent sizes, not blocks).
func DirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

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

// Settle waits until process pid is idle: until it used at most one clock tick of CPU over
// `every`, or max has passed. It returns how long it waited.
func Settle(pid int, every, max time.Duration) (time.Duration, error) {
	start := time.Now()
	prev, err := CPUTicks(pid)
	if err != nil {
		return 0, err
	}
	for time.Since(start) < max {
		time.Sleep(every)
		cur, err := CPUTicks(pid)
		if err != nil {
			return time.Since(start), err
		}
		if cur-prev <= 1 {
			break
		}
		prev = cur
	}
	return time.Since(start), nil
}
