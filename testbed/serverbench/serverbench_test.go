package serverbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
)

// Environment of the benchmark (make bench-server sets the first one and the binaries).
const (
	enableEnv  = "METRICSTOR_SERVERBENCH"     // must be 1, else the test skips
	seriesEnv  = "SERVERBENCH_SERIES"         // default 100,000
	samplesEnv = "SERVERBENCH_SAMPLES"        // default 100
	sendersEnv = "SERVERBENCH_SENDERS"        // default 4
	systemsEnv = "SERVERBENCH_SYSTEMS"        // default "prometheus,metricstor"
	outEnv     = "SERVERBENCH_OUT"            // file the table is written to; default <repo>/bin/serverbench.txt
	timeoutEnv = "SERVERBENCH_LOAD_TIMEOUT_S" // bound of each system's load, seconds; default 600
)

// result is what one system measured.
type result struct {
	name                string
	newStats, steady    loadgen.Stats
	newCPU, steadyCPU   time.Duration // server CPU (user+sys) of each phase, settling included
	newSettle, stSettle time.Duration
	peakRSS, endRSS     int64 // bytes, after the load, before the queries
	diskLive, diskStop  int64 // data directory after the load, and after a clean stop
	series, samples     int64 // counted back by PromQL
	queryTime           time.Duration
	diskFiles           []string      // the data directory after the stop, by kind of file
	clientCPU           time.Duration // the load generator's CPU (this process), both phases
}

func (r result) cpuPerSample(cpu time.Duration, s loadgen.Stats) float64 {
	return float64(cpu.Nanoseconds()) / 1e3 / float64(s.Samples)
}

func TestServerBench(t *testing.T) {
	if os.Getenv(enableEnv) != "1" {
		t.Skipf("the server benchmark runs with `make bench-server` (%s=1)", enableEnv)
	}
	cfg := loadgen.DefaultConfig()
	cfg.Series = envInt(t, seriesEnv, cfg.Series)
	cfg.Samples = envInt(t, samplesEnv, cfg.Samples)
	cfg.Senders = envInt(t, sendersEnv, cfg.Senders)
	cfg.Timeout = time.Duration(envInt(t, timeoutEnv, 600)) * time.Second
	if cfg.Samples < 2 {
		t.Fatalf("%s must be at least 2 (a new-series round and a steady one)", samplesEnv)
	}
	systems := strings.Split(envString(systemsEnv, "prometheus,metricstor"), ",")
	ticks := ClockTicks()
	loadBefore := loadavg()
	started := time.Now()

	var results []result
	for _, name := range systems {
		var r result
		ok := t.Run(name, func(t *testing.T) {
			var srv *Server
			switch name {
			case "metricstor":
				srv = StartMetricstor(t, harness.Binary(t))
			case "prometheus":
				srv = StartPrometheus(t, conformance.PrometheusBinary(t))
			default:
				t.Fatalf("unknown system %q in %s", name, systemsEnv)
			}
			r = runOne(t, srv, cfg, ticks)
		})
		if !ok {
			t.FailNow()
		}
		results = append(results, r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "server ingestion benchmark: %d series × %d samples (remote write 1.0, batches of %d, %d senders, 15 s apart)\n",
		cfg.Series, cfg.Samples, cfg.BatchSize, cfg.Senders)
	fmt.Fprintf(&b, "load average before: %s, after: %s; %d clock ticks/s; run %s\n\n", loadBefore, loadavg(), ticks, time.Since(started).Round(time.Second))
	b.WriteString(table(results, cfg))
	b.WriteString("\ndata directories after the stop, bytes:\n")
	for _, r := range results {
		fmt.Fprintf(&b, "  %s: %s\n", r.name, strings.Join(r.diskFiles, " "))
	}
	out := os.Getenv(outEnv)
	if out == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		out = filepath.Join(root, "bin", "serverbench.txt")
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Print(b.String())
	fmt.Printf("written to %s\n", out)
}

// runOne loads srv with the new-series round, then the steady rounds, measuring each, then
// checks the counts and stops it.
func runOne(t *testing.T, srv *Server, cfg loadgen.Config, ticks int64) result {
	r := result{name: srv.Name}
	pid := srv.Pid()
	cfg.URL = srv.WriteURL
	g, err := loadgen.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := g.SendMetadata(ctx); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	// Let start-up work finish before the first reading.
	if _, err := Settle(pid, 500*time.Millisecond, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	cpu := func() int64 {
		n, err := CPUTicks(pid)
		if err != nil {
			t.Fatalf("read the CPU time of %s: %v", srv.Name, err)
		}
		return n
	}
	toDur := func(n int64) time.Duration { return time.Duration(n) * time.Second / time.Duration(ticks) }
	phase := func(from, to int) (loadgen.Stats, time.Duration, time.Duration) {
		c0, own0 := cpu(), selfCPU()
		s, err := g.Run(ctx, from, to)
		r.clientCPU += selfCPU() - own0
		if err != nil {
			t.Fatalf("%s, rounds [%d, %d): %v", srv.Name, from, to, err)
		}
		// Work the load left behind (flushes, compactions) belongs to the phase.
		settle, err := Settle(pid, 500*time.Millisecond, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return s, toDur(cpu() - c0), settle
	}
	r.newStats, r.newCPU, r.newSettle = phase(0, 1)
	t.Logf("%s new series: %d samples in %s, server CPU %s (settled in %s), %d retries",
		srv.Name, r.newStats.Samples, r.newStats.Elapsed.Round(time.Millisecond), r.newCPU, r.newSettle.Round(time.Millisecond), r.newStats.Retries)
	r.steady, r.steadyCPU, r.stSettle = phase(1, cfg.Samples)
	t.Logf("%s steady: %d samples in %s, server CPU %s (settled in %s), %d retries",
		srv.Name, r.steady.Samples, r.steady.Elapsed.Round(time.Millisecond), r.steadyCPU, r.stSettle.Round(time.Millisecond), r.steady.Retries)

	if r.peakRSS, err = StatusKB(pid, "VmHWM"); err != nil {
		t.Fatal(err)
	}
	if r.endRSS, err = StatusKB(pid, "VmRSS"); err != nil {
		t.Fatal(err)
	}
	if r.diskLive, err = DirBytes(srv.DataDir); err != nil {
		t.Fatal(err)
	}

	// Everything must be there: a benchmark that lost data fails.
	end := g.Timestamp(cfg.Samples - 1)
	span := time.Duration(cfg.Samples) * cfg.Interval
	q0 := time.Now()
	r.series = queryScalar(t, srv.QueryURL, `count({__name__=~".+"})`, end)
	// count_over_time drops the metric name, and series of different names can have the same
	// other labels: one query per name.
	for _, name := range loadgen.MetricNames() {
		r.samples += queryScalar(t, srv.QueryURL, fmt.Sprintf(`sum(count_over_time(%s{job=%q}[%ds]))`, name, loadgen.Job, int(span.Seconds())), end)
	}
	r.queryTime = time.Since(q0)
	if r.series != int64(cfg.Series) || r.samples != g.TotalSamples() {
		t.Errorf("%s lost data: %d series and %d samples counted back, %d and %d sent", srv.Name, r.series, r.samples, cfg.Series, g.TotalSamples())
	}
	if sent := r.newStats.Samples + r.steady.Samples; sent != g.TotalSamples() {
		t.Errorf("%s: %d samples acknowledged, %d sent", srv.Name, sent, g.TotalSamples())
	}

	srv.Stop(t, 3*time.Minute)
	if r.diskStop, err = DirBytes(srv.DataDir); err != nil {
		t.Fatal(err)
	}
	if r.diskFiles, err = DirBreakdown(srv.DataDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: peak RSS %.1f MB, disk %d B live, %d B after stop; counts checked in %s",
		srv.Name, mb(r.peakRSS), r.diskLive, r.diskStop, r.queryTime.Round(time.Millisecond))
	return r
}

// queryScalar runs an instant query at time ms that must return one sample, and returns its value
// as an integer.
func queryScalar(t *testing.T, base, query string, ms int64) int64 {
	t.Helper()
	v := url.Values{"query": {query}, "time": {fmt.Sprintf("%d.%03d", ms/1000, ms%1000)}}
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.PostForm(base+"/api/v1/query", v)
	if err != nil {
		t.Fatalf("query %s: %v", query, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]json.RawMessage `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("query %s: %s: %v", query, resp.Status, err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s: %s: %s", query, resp.Status, body.ErrorType, body.Error)
	}
	if len(body.Data.Result) != 1 {
		t.Fatalf("query %s: %d results, want 1 (nothing stored?)", query, len(body.Data.Result))
	}
	var s string
	if err := json.Unmarshal(body.Data.Result[0].Value[1], &s); err != nil {
		t.Fatalf("query %s: value %s: %v", query, body.Data.Result[0].Value[1], err)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q: %v", query, s, err)
	}
	return int64(f)
}

func table(results []result, cfg loadgen.Config) string {
	var b strings.Builder
	b.WriteString("| figure |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.name)
	}
	b.WriteString("\n|---|")
	for range results {
		b.WriteString("---|")
	}
	row := func(label string, f func(r result) string) {
		fmt.Fprintf(&b, "\n| %s |", label)
		for _, r := range results {
			fmt.Fprintf(&b, " %s |", f(r))
		}
	}
	row("server CPU-µs per ingested sample, new series / steady", func(r result) string {
		return fmt.Sprintf("%.2f / %.2f", r.cpuPerSample(r.newCPU, r.newStats), r.cpuPerSample(r.steadyCPU, r.steady))
	})
	row(fmt.Sprintf("peak RSS (VmHWM) with %d active series, MB", cfg.Series), func(r result) string {
		return fmt.Sprintf("%.0f", mb(r.peakRSS))
	})
	row(fmt.Sprintf("disk bytes per sample after %d samples/series (clean stop; live)", cfg.Samples), func(r result) string {
		return fmt.Sprintf("%.2f (%.2f)", perSample(r.diskStop, r), perSample(r.diskLive, r))
	})
	row("server CPU seconds, new series / steady", func(r result) string {
		return fmt.Sprintf("%.2f / %.2f", r.newCPU.Seconds(), r.steadyCPU.Seconds())
	})
	row("wall seconds of the load, new series / steady (settling after)", func(r result) string {
		return fmt.Sprintf("%.2f / %.2f (%.1f, %.1f)", r.newStats.Elapsed.Seconds(), r.steady.Elapsed.Seconds(), r.newSettle.Seconds(), r.stSettle.Seconds())
	})
	row("steady throughput, samples/s (client wall time)", func(r result) string {
		return fmt.Sprintf("%.0f", r.steady.SamplesPerSecond())
	})
	row("load generator CPU-µs per sample (same machine, competes for the 2 cores)", func(r result) string {
		return fmt.Sprintf("%.2f", float64(r.clientCPU.Nanoseconds())/1e3/float64(r.newStats.Samples+r.steady.Samples))
	})
	row("RSS at the end of the load, MB", func(r result) string { return fmt.Sprintf("%.0f", mb(r.endRSS)) })
	row("retries (5xx/429)", func(r result) string { return fmt.Sprint(r.newStats.Retries + r.steady.Retries) })
	row("series / samples counted back by PromQL (checked exact)", func(r result) string {
		return fmt.Sprintf("%d / %d (%.1f s)", r.series, r.samples, r.queryTime.Seconds())
	})
	b.WriteString("\n")
	return b.String()
}

func perSample(bytes int64, r result) float64 {
	return float64(bytes) / float64(r.newStats.Samples+r.steady.Samples)
}

func mb(b int64) float64 { return float64(b) / 1e6 }

// selfCPU is the user+system CPU time of this process (the load generator).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}
