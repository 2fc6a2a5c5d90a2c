package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
)

// TestMemoryLimit runs the binary with a small memory budget (memory_limit_mib) and pushes
// 20,000 loadgen series by remote write: the Go runtime's soft limit is the budget (the
// storage's telemetry reads it from the runtime, and the start-up log says where it came from),
// and every sample is read back, with its value, before and after a kill -9. Restarted with
// GOMEMLIMIT in its environment, the process keeps the user's limit instead.
func TestMemoryLimit(t *testing.T) {
	const budgetMiB = 96
	t.Setenv("GOMEMLIMIT", "") // unset for the binary (the runtime treats empty as unset)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.StorageYAML = fmt.Sprintf("memory_limit_mib: %d\n", budgetMiB)
	c := harness.NewCollector(t, "metricstor (memory limit)", harness.Binary(t), cfg)
	c.Start()
	defer c.Stop(time.Minute)

	const series, samples = 20_000, 20
	lcfg := loadgen.Config{URL: cfg.RemoteWriteURL(), Series: series, Samples: samples, Senders: 2,
		End: time.Now().Add(-time.Minute).Truncate(time.Second)}
	gen, err := loadgen.New(lcfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(context.Background(), 0, samples); err != nil {
		t.Fatal(err)
	}

	checkLimit := func(t *testing.T, want int64, source string) {
		t.Helper()
		if got := telemetryGauge(t, cfg.Ports, "metricstor_storage_memory_limit"); got != float64(want) {
			t.Errorf("metricstor_storage_memory_limit = %v, want %d", got, want)
		}
		out := c.Proc.Output()
		if !strings.Contains(out, "Memory budget") || !strings.Contains(out, `"source": "`+source+`"`) {
			t.Errorf("the start-up log does not say the limit came from %s:\n%s", source, lastLines(out, 20))
		}
	}
	// Every sample, by count and by the sum of its values, per metric name: count_over_time
	// drops the name, and series of different names share their other labels.
	wantCount, wantSum := map[string]float64{}, map[string]float64{}
	for id := range series {
		name := ""
		for _, l := range loadgen.Labels(id) {
			if l.Name == "__name__" {
				name = l.Value
			}
		}
		for r := range samples {
			wantCount[name]++
			wantSum[name] += loadgen.Value(id, r)
		}
	}
	end := time.UnixMilli(gen.Timestamp(samples - 1))
	window := fmt.Sprintf("%ds", int((time.Duration(samples) * gen.Config().Interval).Seconds()))
	checkReadBack := func(t *testing.T) {
		t.Helper()
		for name, n := range wantCount {
			for _, q := range []struct {
				fn   string
				want float64
			}{{"count_over_time", n}, {"sum_over_time", wantSum[name]}} {
				query := fmt.Sprintf(`sum(%s(%s{job=%q}[%s]))`, q.fn, name, loadgen.Job, window)
				got := instantVector(t, cfg.Ports, query, end)
				v, ok := got["{}"]
				if !ok || math.Abs(v-q.want) > 1e-9*math.Max(1, math.Abs(q.want)) {
					t.Errorf("%s = %v, want %v", query, got, q.want)
				}
			}
		}
	}

	t.Run("budget", func(t *testing.T) {
		checkLimit(t, budgetMiB<<20, "memory_limit_mib")
		checkReadBack(t)
	})
	// A tenth of a second after the pipelines are ready, the storage extension drops the
	// executable's pages that starting the collector touched (tens of MB of this binary) from the
	// process's resident memory; the read-back above ran on the code mapped again as it was needed.
	t.Run("startup_pages_released", func(t *testing.T) {
		released := regexp.MustCompile(`Released the executable's pages that only startup used.*"released_bytes": (\d+)`)
		var out string
		var m []string
		for deadline := time.Now().Add(10 * time.Second); m == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			out = c.Proc.Output() // the release comes soon after the pipelines are ready
			m = released.FindStringSubmatch(out)
		}
		if m == nil {
			t.Fatalf("the log does not say the executable's startup pages were released:\n%s", lastLines(out, 20))
		}
		if n, _ := strconv.ParseInt(m[1], 10, 64); n < 10<<20 {
			t.Errorf("released %d bytes of the executable's pages, want the tens of MB starting the collector touches", n)
		}
		// What runs afterwards is read back a page at a time: the released mappings read without
		// read-ahead ("rr" in their VmFlags, MADV_RANDOM).
		random, readOnly := readOnlyMappingsRandom(t, c.Proc.Pid(), harness.Binary(t))
		if readOnly == 0 || random != readOnly {
			t.Errorf("%d of the binary's %d read-only mappings are marked for random reads, want all", random, readOnly)
		}
	})

	t.Setenv("GOMEMLIMIT", "200MiB")
	c.Kill()
	c.Start()
	t.Run("after_kill_with_GOMEMLIMIT", func(t *testing.T) {
		checkLimit(t, 200<<20, "GOMEMLIMIT")
		checkReadBack(t)
	})
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// readOnlyMappingsRandom counts the read-only private mappings of the executable at path in
// process pid, and those of them whose VmFlags in /proc/<pid>/smaps include "rr" (MADV_RANDOM).
func readOnlyMappingsRandom(t *testing.T, pid int, path string) (random, readOnly int) {
	t.Helper()
	path, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if resolved, err := filepath.EvalSymlinks(path); err == nil {
		path = resolved
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		t.Fatal(err)
	}
	mine := false
	for line := range strings.Lines(string(smaps)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			// start-end perms offset dev inode path
			mine = strings.Join(f[5:], " ") == path && (f[1] == "r--p" || f[1] == "r-xp")
			if mine {
				readOnly++
			}
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			mine = false // an anonymous mapping
		case mine && f[0] == "VmFlags:" && slices.Contains(f[1:], "rr"):
			random++
		}
	}
	return random, readOnly
}
