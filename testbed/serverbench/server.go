package serverbench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// The systems the benchmark knows, in the order of the table's columns.
const (
	Prometheus      = "prometheus"
	VictoriaMetrics = "victoriametrics"
	Metricstor      = "metricstor"
)

// VictoriaMetricsEnv overrides the path of the VictoriaMetrics binary; VictoriaMetricsVersion is
// the one testbed/scripts/install-victoriametrics.sh installs by default.
const (
	VictoriaMetricsEnv     = "VICTORIAMETRICS_BINARY"
	VictoriaMetricsVersion = "v1.151.0"
)

// Server is one system under test, running as a child process (harness.Process). It can be
// stopped and started again on the same data directory (Restart), which is how the restart time
// is measured.
type Server struct {
	Name     string
	WriteURL string // remote write 1.0 endpoint
	QueryURL string // base URL of the Prometheus HTTP API
	DataDir  string

	binary string
	args   []string
	ready  []harness.Probe

	proc *harness.Process
}

// Pid is the process id of the server.
func (s *Server) Pid() int { return s.proc.Pid() }

// Output returns what the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.proc.Output() }

// Stop sends SIGTERM and waits up to timeout for a clean exit; it fails the test otherwise (the
// process is then killed at the end of the test).
func (s *Server) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	s.proc.Stop(timeout)
}

// Restart starts the stopped server again on the same data and returns the time from the start
// of the process until it answered every readiness probe.
func (s *Server) Restart(t testing.TB) time.Duration {
	t.Helper()
	if !s.proc.Exited() {
		t.Fatalf("restart %s: still running", s.Name)
	}
	return s.launch(t)
}

// newServer starts binary with args and waits until every probe in ready passes. The process is
// killed at the end of the test if still running, and its output logged if the test failed.
func newServer(t testing.TB, name, dataDir, writeURL, queryURL, binary string, args []string, ready ...harness.Probe) *Server {
	t.Helper()
	s := &Server{Name: name, WriteURL: writeURL, QueryURL: queryURL, DataDir: dataDir, binary: binary, args: args, ready: ready}
	s.launch(t)
	return s
}

func (s *Server) launch(t testing.TB) time.Duration {
	t.Helper()
	started := time.Now()
	s.proc = harness.Start(t, s.Name, s.binary, s.args...)
	s.proc.WaitFor(3*time.Minute, s.ready...)
	return time.Since(started)
}

// startMetricstor starts the otelcol-metricstor binary on the default settings, scraping what
// scrape (a Prometheus configuration, "" for nothing) names with its prometheus receiver.
func startMetricstor(t testing.TB, binary, scrape string) *Server {
	t.Helper()
	// config.yaml's pipeline and settings (both receivers, exporter without queue, retention
	// 15d, default partitioning) on free loopback ports and a temporary data directory.
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.Retention = "15d"
	cfg.ScrapeYAML = scrape
	config := cfg.Write(t)
	query := cfg.Ports.PromQLURL()
	return newServer(t, Metricstor, cfg.DataDir, cfg.RemoteWriteURL(), query, binary, []string{"--config", config},
		harness.HTTPProbe(query+"/-/ready"), harness.TCPProbe(cfg.RemoteWrite))
}

// startPrometheus starts Prometheus with its remote write receiver and its default TSDB settings
// (2 h blocks, 15 d retention) on a temporary directory, on the configuration config
// (prometheus.yml's text: "global: {}" scrapes nothing).
func startPrometheus(t testing.TB, binary, config string) *Server {
	t.Helper()
	port := harness.FreePorts(t, 1)[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	base := "http://" + harness.Addr(port)
	return newServer(t, Prometheus, data, base+"/api/v1/write", base, binary, []string{
		"--config.file=" + file,
		"--storage.tsdb.path=" + data,
		"--storage.tsdb.retention.time=15d",
		"--web.listen-address=" + harness.Addr(port),
		"--web.enable-remote-write-receiver",
	}, harness.HTTPProbe(base+"/-/ready"))
}

// StartVictoriaMetrics starts the single-node VictoriaMetrics on a temporary directory, with the
// retention of the others (15 d) and three query settings that make its answers comparable right
// after ingestion: no latency offset (by default the last 30 s are hidden from queries), no
// response cache (else repeated runs of a query measure the cache and a query right after a load
// may answer from a stale one), and no limit on the series a query may touch below 10 M (its
// default depends on the memory of the machine).
func StartVictoriaMetrics(t testing.TB, binary string) *Server {
	t.Helper()
	return startVictoriaMetrics(t, binary, "")
}

// startVictoriaMetrics starts VictoriaMetrics, scraping what scrape (a Prometheus configuration,
// "" for nothing) names (-promscrape.config).
func startVictoriaMetrics(t testing.TB, binary, scrape string) *Server {
	t.Helper()
	port := harness.FreePorts(t, 1)[0]
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	base := "http://" + harness.Addr(port)
	var extra []string
	if scrape != "" {
		file := filepath.Join(dir, "scrape.yml")
		if err := os.WriteFile(file, []byte(scrape), 0o600); err != nil {
			t.Fatal(err)
		}
		extra = append(extra, "-promscrape.config="+file)
	}
	return newServer(t, VictoriaMetrics, data, base+"/api/v1/write", base, binary, append([]string{
		"-storageDataPath=" + data,
		"-httpListenAddr=" + harness.Addr(port),
		"-retentionPeriod=15d",
		"-search.latencyOffset=0",
		"-search.disableCache",
		"-search.maxUniqueTimeseries=10000000",
		"-loggerLevel=WARN",
	}, extra...), harness.HTTPProbe(base+"/health"))
}

// VictoriaMetricsBinary returns $VICTORIAMETRICS_BINARY if set, else the binary
// testbed/scripts/install-victoriametrics.sh installs. It fails the test when the file is missing.
func VictoriaMetricsBinary(t testing.TB) string {
	t.Helper()
	path := os.Getenv(VictoriaMetricsEnv)
	if path == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatalf("locate victoria-metrics: %v", err)
		}
		path = filepath.Join(root, "bin", "tools", "victoriametrics-"+VictoriaMetricsVersion, "victoria-metrics")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("victoria-metrics binary not found (%v): run `make victoriametrics`, or set %s", err, VictoriaMetricsEnv)
	}
	return path
}

// Flush makes everything acknowledged visible to queries. Prometheus and Metricstor need nothing;
// VictoriaMetrics keeps the last second or two of ingested rows in memory buffers that queries
// do not see, until /internal/force_flush.
func (s *Server) Flush(t testing.TB) {
	t.Helper()
	if s.Name == VictoriaMetrics {
		get(t, s.QueryURL+"/internal/force_flush")
	}
}

// Compact runs the store's own compaction of what was loaded, where the store offers one, and
// waits until the server is idle. VictoriaMetrics: a flush, then a forced merge of its partitions
// (run in the background; vm_active_force_merges says when it is over). Prometheus compacts its
// head into 2 h blocks by itself once it spans 3 h (the last 2-3 h stay in the head and its WAL,
// as in any running Prometheus), and Metricstor has nothing to call: both are given time to
// finish what they started.
func (s *Server) Compact(t testing.TB) {
	t.Helper()
	if s.Name == VictoriaMetrics {
		s.Flush(t)
		get(t, s.QueryURL+"/internal/force_merge")
		deadline := time.Now().Add(5 * time.Minute)
		// The merge starts in a goroutine: give it a moment to count itself in.
		time.Sleep(200 * time.Millisecond)
		for {
			n, err := metricValue(s.QueryURL+"/metrics", "vm_active_force_merges")
			if err != nil {
				t.Fatalf("%s: %v", s.Name, err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: forced merge still running after 5 minutes", s.Name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := harness.Settle(s.Pid(), time.Second, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// DiskBytes returns the bytes of the data directory without the caches it keeps on disk, and
// those caches: VictoriaMetrics persists caches (series names, IDs, ...) into cache/ at shutdown
// and rebuilds them when they are gone; the others keep none.
func (s *Server) DiskBytes() (data, cache int64, err error) {
	total, err := harness.DirBytes(s.DataDir)
	if err != nil || s.Name != VictoriaMetrics {
		return total, 0, err
	}
	dir := filepath.Join(s.DataDir, "cache")
	if _, err := os.Stat(dir); err != nil {
		return total, 0, nil
	}
	cache, err = harness.DirBytes(dir)
	return total - cache, cache, err
}

func get(t testing.TB, u string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Minute}
	resp, err := client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("GET %s: %s: %s", u, resp.Status, body)
	}
}

// metricValue reads one unlabelled sample from a Prometheus text exposition.
func metricValue(u, name string) (float64, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("GET %s: no sample %s", u, name)
}
