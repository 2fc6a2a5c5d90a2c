package serverbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
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
	enableEnv     = "METRICSTOR_SERVERBENCH"     // must be 1, else the test skips
	seriesEnv     = "SERVERBENCH_SERIES"         // ingestion: series, default 100,000; 0 skips the ingestion part
	samplesEnv    = "SERVERBENCH_SAMPLES"        // ingestion: samples per series, default 100
	sendersEnv    = "SERVERBENCH_SENDERS"        // default 4
	daySeriesEnv  = "SERVERBENCH_DAY_SERIES"     // the day: series, default 2,000; 0 skips the day and its queries
	dayHoursEnv   = "SERVERBENCH_DAY_HOURS"      // the day: hours of samples 15 s apart, default 24
	queryRunsEnv  = "SERVERBENCH_QUERY_RUNS"     // runs of each range query per server, default 3
	ingestRunsEnv = "SERVERBENCH_INGEST_RUNS"    // ingestion runs per server, the servers taking turns; default 3
	systemsEnv    = "SERVERBENCH_SYSTEMS"        // default "prometheus,victoriametrics,metricstor"
	outEnv        = "SERVERBENCH_OUT"            // file the table is written to; default <repo>/bin/serverbench.txt
	timeoutEnv    = "SERVERBENCH_LOAD_TIMEOUT_S" // bound of each load, seconds; default 600
	scrapeEnv     = "SERVERBENCH_SCRAPE_TARGETS" // scraping: targets, default 50; 0 skips the scraping part
	scrapeSerEnv  = "SERVERBENCH_SCRAPE_SERIES"  // scraping: series per target, default 1,000
	defaultSystem = Prometheus + "," + VictoriaMetrics + "," + Metricstor
)

// dayWindow is the number of rounds (15 s each) sent before all senders wait for each other while
// loading the day: the senders stay within 10 minutes of sample time of each other, so a store
// that accepts samples in order only within some window behind its newest (Prometheus: 1 h below
// its head's maximum time) gets every series in order.
const dayWindow = 40

// ingestResult is what one system measured under the ingestion load.
type ingestResult struct {
	newStats, steady    loadgen.Stats
	newCPU, steadyCPU   time.Duration // server CPU (user+sys) of each phase, settling included
	newSettle, stSettle time.Duration
	peakRSS, endRSS     int64 // bytes, after the load, before the queries
	diskLive, diskStop  int64 // data directory after the load, and after a clean stop (caches left out)
	cache               int64 // caches kept on disk (VictoriaMetrics' cache/), after the stop
	series, samples     int64 // counted back by PromQL
	queryTime           time.Duration
	diskFiles           []string      // the data directory after the stop, by kind of file
	clientCPU           time.Duration // the load generator's CPU (this process), both phases
}

// dayResult is what one system measured with the day loaded.
type dayResult struct {
	load                     loadgen.Stats
	loadCPU                  time.Duration // server CPU of the load and its settling
	compactTime              time.Duration // the store's own compaction or flush, and settling
	peakRSS                  int64
	disk                     int64 // after compaction and a clean stop (caches left out)
	cache                    int64 // caches kept on disk (VictoriaMetrics' cache/)
	diskFiles                []string
	blockBytes, blockSamples int64 // Prometheus: its persisted blocks, from their meta.json
	restart                  time.Duration
	series, samples          int64
	queries                  []queryResult
}

type queryResult struct {
	runs []time.Duration
	ans  answer // of the first run
	diff string // against Prometheus's answer; set once every system ran
}

type sysResult struct {
	name   string
	ingest []*ingestResult // one per run; the table gives the median of each figure
	scrape []*scrapeResult // likewise
	day    *dayResult
}

// scrapeResult is what one system measured while scraping the targets.
type scrapeResult struct {
	cpu     time.Duration // server CPU over the measured window
	samples int64         // the targets' samples scraped in that window: targets × series × scrapes
	peakRSS int64
	series  int64 // the targets' series counted back by PromQL
}

func (r *scrapeResult) cpuPerSample() float64 {
	return float64(r.cpu.Nanoseconds()) / 1e3 / float64(r.samples)
}

type benchConfig struct {
	ingest      loadgen.Config
	day         loadgen.Config
	dayHours    int
	queryRuns   int
	ingestRuns  int
	skipIngest  bool
	skipDay     bool
	scrapeN     int // targets; 0 skips the scraping part
	scrapeS     int // series per target
	ticks       int64
	dayEnd      time.Time
	systemNames []string
	compared    bool // Prometheus ran the day, the others' answers were compared with its
}

func (r ingestResult) cpuPerSample(cpu time.Duration, s loadgen.Stats) float64 {
	return float64(cpu.Nanoseconds()) / 1e3 / float64(s.Samples)
}

func TestServerBench(t *testing.T) {
	if os.Getenv(enableEnv) != "1" {
		t.Skipf("the server benchmark runs with `make bench-server` (%s=1)", enableEnv)
	}
	var bc benchConfig
	bc.ingest = loadgen.DefaultConfig()
	bc.ingest.Series = envInt(t, seriesEnv, bc.ingest.Series)
	bc.ingest.Samples = envInt(t, samplesEnv, bc.ingest.Samples)
	bc.ingest.Senders = envInt(t, sendersEnv, bc.ingest.Senders)
	bc.ingest.Timeout = time.Duration(envInt(t, timeoutEnv, 600)) * time.Second
	bc.skipIngest = bc.ingest.Series == 0
	if !bc.skipIngest && bc.ingest.Samples < 2 {
		t.Fatalf("%s must be at least 2 (a new-series round and a steady one)", samplesEnv)
	}
	bc.dayHours = envInt(t, dayHoursEnv, 24)
	bc.day = loadgen.DefaultConfig()
	bc.day.Series = envInt(t, daySeriesEnv, 2000)
	bc.day.Senders = bc.ingest.Senders
	bc.day.Samples = bc.dayHours * 3600 / 15
	bc.day.Timeout = bc.ingest.Timeout
	bc.skipDay = bc.day.Series == 0
	// One end for every system, on a whole minute like the queries' steps, so that every store
	// holds the same samples and answers the same question.
	bc.dayEnd = time.Now().Truncate(time.Minute)
	bc.day.End = bc.dayEnd
	bc.queryRuns = envInt(t, queryRunsEnv, 3)
	bc.ingestRuns = envInt(t, ingestRunsEnv, 3)
	if bc.queryRuns < 1 || bc.dayHours < 1 || bc.ingestRuns < 1 {
		t.Fatalf("%s, %s and %s must be at least 1", queryRunsEnv, dayHoursEnv, ingestRunsEnv)
	}
	bc.scrapeN = envInt(t, scrapeEnv, 50)
	bc.scrapeS = envInt(t, scrapeSerEnv, 1000)
	bc.systemNames = strings.Split(envString(systemsEnv, defaultSystem), ",")
	bc.ticks = harness.ClockTicks()
	loadBefore := loadavg()
	started := time.Now()

	start := func(t *testing.T, name string) *Server { return startSystem(t, name, "") }
	results := make([]sysResult, len(bc.systemNames))
	for i, name := range bc.systemNames {
		results[i].name = name
	}
	// The servers take turns run by run, so that the machine's drifts (other tenants of the host)
	// fall on all of them alike; each figure is then the median of a server's runs.
	for run := range bc.ingestRuns {
		for i := range results {
			r := &results[i]
			if !bc.skipIngest && !t.Run(fmt.Sprintf("%s/ingest%d", r.name, run+1), func(t *testing.T) {
				r.ingest = append(r.ingest, runIngest(t, start(t, r.name), bc))
			}) {
				t.FailNow()
			}
		}
	}
	if bc.scrapeN > 0 {
		targets := StartTargets(t, bc.scrapeN, bc.scrapeS)
		for run := range bc.ingestRuns {
			for i := range results {
				r := &results[i]
				if !t.Run(fmt.Sprintf("%s/scrape%d", r.name, run+1), func(t *testing.T) {
					r.scrape = append(r.scrape, runScrape(t, r.name, targets, bc))
				}) {
					t.FailNow()
				}
			}
		}
	}
	for i := range results {
		r := &results[i]
		if !bc.skipDay && !t.Run(r.name+"/day", func(t *testing.T) { r.day = runDay(t, start(t, r.name), bc) }) {
			t.FailNow()
		}
	}
	bc.compared = compareAnswers(results)

	var b strings.Builder
	fmt.Fprintf(&b, "server benchmark, %s: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), strings.Join(bc.systemNames, ", "))
	fmt.Fprintf(&b, "machine: %d CPUs (%s); load average before: %s, after: %s; %d clock ticks/s; run %s\n",
		runtime.NumCPU(), cpuModel(), loadBefore, loadavg(), bc.ticks, time.Since(started).Round(time.Second))
	if !bc.skipIngest {
		fmt.Fprintf(&b, "ingestion: %d series × %d samples (remote write 1.0, batches of %d, %d senders, 15 s apart, the last now); %d runs a server, the servers taking turns, each figure the median of its runs\n",
			bc.ingest.Series, bc.ingest.Samples, bc.ingest.BatchSize, bc.ingest.Senders, bc.ingestRuns)
	}
	if bc.scrapeN > 0 {
		fmt.Fprintf(&b, "scraping: %d targets × %d series every %s (text format), CPU over %s after %s of warm-up; %d runs a server, taking turns, medians\n",
			bc.scrapeN, bc.scrapeS, scrapeInterval, scrapeWindow, scrapeWarmUp, bc.ingestRuns)
	}
	if !bc.skipDay {
		fmt.Fprintf(&b, "day: %d series × %d samples (%d h, 15 s apart, ending %s), loaded oldest first; %d range queries over it, step 60 s, %d runs each\n",
			bc.day.Series, bc.day.Samples, bc.dayHours, bc.dayEnd.UTC().Format("15:04"), len(DayQueries), bc.queryRuns)
	}
	b.WriteString("ratios: Metricstor's figure over the peer's (below 1 is better, except for throughput)\n\n")
	b.WriteString(table(results, bc))
	b.WriteString(details(results, bc))
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

// startLoad points cfg at srv, makes its load generator, sends the metadata and waits until the
// server is idle again, so that the first CPU reading starts from rest.
func startLoad(t *testing.T, srv *Server, cfg *loadgen.Config) *loadgen.Generator {
	t.Helper()
	cfg.URL = srv.WriteURL
	g, err := loadgen.New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SendMetadata(context.Background()); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if _, err := harness.Settle(srv.Pid(), 500*time.Millisecond, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return g
}

// runIngest loads srv with the new-series round, then the steady rounds, measuring each, then
// checks the counts and stops it.
func runIngest(t *testing.T, srv *Server, bc benchConfig) *ingestResult {
	r := &ingestResult{}
	cfg := bc.ingest
	pid := srv.Pid()
	g := startLoad(t, srv, &cfg)
	ctx := context.Background()
	cpu := cpuReader(t, srv, bc.ticks)
	phase := func(from, to int) (loadgen.Stats, time.Duration, time.Duration) {
		c0, own0 := cpu(), selfCPU()
		s, err := g.Run(ctx, from, to)
		r.clientCPU += selfCPU() - own0
		if err != nil {
			t.Fatalf("%s, rounds [%d, %d): %v", srv.Name, from, to, err)
		}
		// Work the load left behind (flushes, compactions) belongs to the phase.
		settle, err := harness.Settle(pid, 500*time.Millisecond, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return s, cpu() - c0, settle
	}
	r.newStats, r.newCPU, r.newSettle = phase(0, 1)
	t.Logf("%s new series: %d samples in %s, server CPU %s (settled in %s), %d retries, latency p50 %s p99 %s",
		srv.Name, r.newStats.Samples, r.newStats.Elapsed.Round(time.Millisecond), r.newCPU, r.newSettle.Round(time.Millisecond),
		r.newStats.Retries, r.newStats.Latency(0.5), r.newStats.Latency(0.99))
	r.steady, r.steadyCPU, r.stSettle = phase(1, cfg.Samples)
	t.Logf("%s steady: %d samples in %s, server CPU %s (settled in %s), %d retries, latency p50 %s p99 %s",
		srv.Name, r.steady.Samples, r.steady.Elapsed.Round(time.Millisecond), r.steadyCPU, r.stSettle.Round(time.Millisecond),
		r.steady.Retries, r.steady.Latency(0.5), r.steady.Latency(0.99))

	var err error
	if r.peakRSS, err = harness.StatusKB(pid, "VmHWM"); err != nil {
		t.Fatal(err)
	}
	if r.endRSS, err = harness.StatusKB(pid, "VmRSS"); err != nil {
		t.Fatal(err)
	}
	q0 := time.Now()
	r.series, r.samples = countBack(t, srv, g, cfg)
	r.queryTime = time.Since(q0)
	// After the count, which made VictoriaMetrics write out its in-memory buffers.
	if r.diskLive, _, err = srv.DiskBytes(); err != nil {
		t.Fatal(err)
	}
	if sent := r.newStats.Samples + r.steady.Samples; sent != g.TotalSamples() {
		t.Errorf("%s: %d samples acknowledged, %d sent", srv.Name, sent, g.TotalSamples())
	}

	srv.Stop(t, 3*time.Minute)
	if r.diskStop, r.cache, err = srv.DiskBytes(); err != nil {
		t.Fatal(err)
	}
	if r.diskFiles, err = DirBreakdown(srv.DataDir); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: peak RSS %.1f MB, disk %d B live, %d B after stop; counts checked in %s",
		srv.Name, mb(r.peakRSS), r.diskLive, r.diskStop, r.queryTime.Round(time.Millisecond))
	return r
}

// The scraping part: every server scrapes the same targets at this interval; CPU is read over
// the window after the warm-up (the series created, the first compactions done).
const (
	scrapeInterval = time.Second
	scrapeWarmUp   = 15 * time.Second
	scrapeWindow   = 30 * time.Second
)

// startSystem starts system name, scraping what scrape (a Prometheus configuration, "" for
// nothing) names.
func startSystem(t *testing.T, name, scrape string) *Server {
	switch name {
	case Metricstor:
		// A scrape configuration holds no $, which the collector would read as an environment
		// variable.
		return startMetricstor(t, harness.Binary(t), scrape)
	case Prometheus:
		if scrape == "" {
			scrape = "global: {}\n"
		}
		return startPrometheus(t, conformance.PrometheusBinary(t), scrape)
	case VictoriaMetrics:
		return startVictoriaMetrics(t, VictoriaMetricsBinary(t), scrape)
	}
	t.Fatalf("unknown system %q in %s (known: %s)", name, systemsEnv, defaultSystem)
	return nil
}

// runScrape starts system name scraping targets, measures its CPU over scrapeWindow, counts the
// targets' series back and stops it.
func runScrape(t *testing.T, name string, targets *Targets, bc benchConfig) *scrapeResult {
	srv := startSystem(t, name, targets.ScrapeConfig(scrapeInterval))
	cpu := cpuReader(t, srv, bc.ticks)
	time.Sleep(scrapeWarmUp)
	c0 := cpu()
	time.Sleep(scrapeWindow)
	r := &scrapeResult{cpu: cpu() - c0}
	r.samples = int64(len(targets.Addrs)) * int64(targets.Series) * int64(scrapeWindow/scrapeInterval)
	var err error
	if r.peakRSS, err = harness.StatusKB(srv.Pid(), "VmHWM"); err != nil {
		t.Fatal(err)
	}
	srv.Flush(t)
	q := fmt.Sprintf(`count({job=%q, __name__=~"node_bench_.+"})`, ScrapeJob)
	r.series = queryScalar(t, srv.QueryURL, q, time.Now().UnixMilli())
	if want := int64(len(targets.Addrs) * targets.Series); r.series != want {
		t.Errorf("%s: %d of the targets' series counted back, %d scraped", name, r.series, want)
	}
	t.Logf("%s scraping: server CPU %s over %s, %.2f CPU-µs per sample, peak RSS %.0f MB",
		name, r.cpu, scrapeWindow, r.cpuPerSample(), mb(r.peakRSS))
	srv.Stop(t, 3*time.Minute)
	return r
}

// runDay loads the day into srv oldest first, lets the store compact it, stops it (disk), starts
// it again (restart time) and runs the range queries.
func runDay(t *testing.T, srv *Server, bc benchConfig) *dayResult {
	r := &dayResult{}
	cfg := bc.day
	g := startLoad(t, srv, &cfg)
	ctx := context.Background()
	cpu := cpuReader(t, srv, bc.ticks)
	c0 := cpu()
	for from := 0; from < cfg.Samples; from += dayWindow {
		s, err := g.Run(ctx, from, min(from+dayWindow, cfg.Samples))
		if err != nil {
			t.Fatalf("%s, the day, rounds [%d, %d): %v", srv.Name, from, min(from+dayWindow, cfg.Samples), err)
		}
		r.load = r.load.Add(s)
	}
	if _, err := harness.Settle(srv.Pid(), 500*time.Millisecond, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	r.loadCPU = cpu() - c0
	t.Logf("%s day: %d samples in %s, server CPU %s, %d retries, latency p50 %s p99 %s",
		srv.Name, r.load.Samples, r.load.Elapsed.Round(time.Millisecond), r.loadCPU, r.load.Retries, r.load.Latency(0.5), r.load.Latency(0.99))

	t0 := time.Now()
	srv.Compact(t)
	r.compactTime = time.Since(t0)
	r.series, r.samples = countBack(t, srv, g, cfg)
	var err error
	if r.peakRSS, err = harness.StatusKB(srv.Pid(), "VmHWM"); err != nil {
		t.Fatal(err)
	}
	srv.Stop(t, 3*time.Minute)
	if r.disk, r.cache, err = srv.DiskBytes(); err != nil {
		t.Fatal(err)
	}
	if r.diskFiles, err = DirBreakdown(srv.DataDir); err != nil {
		t.Fatal(err)
	}
	if srv.Name == Prometheus {
		if r.blockBytes, r.blockSamples, err = prometheusBlocks(srv.DataDir); err != nil {
			t.Fatal(err)
		}
	}
	r.restart = srv.Restart(t)
	t.Logf("%s day: compaction %s, disk %d B after stop, restart %s", srv.Name, r.compactTime.Round(time.Millisecond), r.disk, r.restart.Round(time.Millisecond))

	start := bc.dayEnd.Add(-time.Duration(bc.dayHours) * time.Hour)
	for _, q := range DayQueries {
		var qr queryResult
		for i := range bc.queryRuns {
			d, a := queryRange(srv.QueryURL, q, start, bc.dayEnd, time.Minute)
			qr.runs = append(qr.runs, d)
			if i == 0 {
				qr.ans = a
			}
		}
		if qr.ans.err != "" {
			t.Logf("%s: %s: %s", srv.Name, q, qr.ans.err)
		}
		r.queries = append(r.queries, qr)
	}
	srv.Stop(t, 3*time.Minute)
	return r
}

// countBack counts the series and samples of g's run in srv with PromQL, and fails the test unless
// they are all there: a benchmark that lost data measured nothing.
func countBack(t *testing.T, srv *Server, g *loadgen.Generator, cfg loadgen.Config) (series, samples int64) {
	t.Helper()
	srv.Flush(t)
	end := g.Timestamp(cfg.Samples - 1)
	span := time.Duration(cfg.Samples) * cfg.Interval
	series = queryScalar(t, srv.QueryURL, `count({__name__=~".+"})`, end)
	// count_over_time drops the metric name, and series of different names can have the same
	// other labels: one query per name.
	for _, name := range loadgen.MetricNames() {
		samples += queryScalar(t, srv.QueryURL, fmt.Sprintf(`sum(count_over_time(%s{job=%q}[%ds]))`, name, loadgen.Job, int(span.Seconds())), end)
	}
	if series != int64(cfg.Series) || samples != g.TotalSamples() {
		t.Errorf("%s lost data: %d series and %d samples counted back, %d and %d sent", srv.Name, series, samples, cfg.Series, g.TotalSamples())
	}
	return series, samples
}

func cpuReader(t *testing.T, srv *Server, ticks int64) func() time.Duration {
	return func() time.Duration {
		n, err := harness.CPUTicks(srv.Pid())
		if err != nil {
			t.Fatalf("read the CPU time of %s: %v", srv.Name, err)
		}
		return time.Duration(n) * time.Second / time.Duration(ticks)
	}
}

// prometheusBlocks sums the bytes and the samples (meta.json's stats.numSamples) of the
// persisted blocks of a Prometheus data directory: what its compaction made of the day, without
// the head's WAL and chunks.
func prometheusBlocks(dir string) (bytes, samples int64, err error) {
	metas, err := filepath.Glob(filepath.Join(dir, "*", "meta.json"))
	if err != nil {
		return 0, 0, err
	}
	for _, m := range metas {
		data, err := os.ReadFile(m)
		if err != nil {
			return 0, 0, err
		}
		var meta struct {
			Stats struct {
				NumSamples int64 `json:"numSamples"`
			} `json:"stats"`
		}
		if err := json.Unmarshal(data, &meta); err != nil {
			return 0, 0, fmt.Errorf("%s: %v", m, err)
		}
		n, err := harness.DirBytes(filepath.Dir(m))
		if err != nil {
			return 0, 0, err
		}
		bytes += n
		samples += meta.Stats.NumSamples
	}
	return bytes, samples, nil
}

// compareAnswers sets the diff of every query of every system against Prometheus's answer, and
// reports whether there was one to compare with.
func compareAnswers(results []sysResult) bool {
	var ref *dayResult
	for _, r := range results {
		if r.name == Prometheus {
			ref = r.day
		}
	}
	if ref == nil {
		return false
	}
	for _, r := range results {
		if r.day == nil || r.name == Prometheus {
			continue
		}
		for i := range r.day.queries {
			r.day.queries[i].diff = diffAnswers(ref.queries[i].ans, r.day.queries[i].ans)
		}
	}
	return true
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

// row is one figure of the table. value returns the cell and, when the figure is a number that a
// ratio makes sense of, the number.
type row struct {
	label string
	value func(r sysResult) (string, float64, bool)
}

func table(results []sysResult, bc benchConfig) string {
	var m *sysResult
	var peers []sysResult
	for i, r := range results {
		if r.name == Metricstor {
			m = &results[i]
		} else {
			peers = append(peers, r)
		}
	}
	if m == nil {
		peers = nil
	}
	var b strings.Builder
	b.WriteString("| figure |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.name)
	}
	for _, p := range peers {
		fmt.Fprintf(&b, " metricstor / %s |", p.name)
	}
	b.WriteString("\n|---|")
	for range len(results) + len(peers) {
		b.WriteString("---|")
	}
	emit := func(rw row) {
		fmt.Fprintf(&b, "\n| %s |", rw.label)
		for _, r := range results {
			s, _, _ := rw.value(r)
			fmt.Fprintf(&b, " %s |", s)
		}
		for _, p := range peers {
			_, mv, mok := rw.value(*m)
			_, pv, pok := rw.value(p)
			if mok && pok && pv != 0 {
				fmt.Fprintf(&b, " %.2f |", mv/pv)
			} else {
				b.WriteString(" |")
			}
		}
	}
	section := func(title string) {
		fmt.Fprintf(&b, "\n| **%s** |", title)
		for range len(results) + len(peers) {
			b.WriteString(" |")
		}
	}
	num := func(format string, f func(r sysResult) (float64, bool)) func(r sysResult) (string, float64, bool) {
		return func(r sysResult) (string, float64, bool) {
			v, ok := f(r)
			if !ok {
				return "–", 0, false
			}
			return fmt.Sprintf(format, v), v, true
		}
	}
	ing := func(format string, f func(r *ingestResult) float64) func(r sysResult) (string, float64, bool) {
		return num(format, func(r sysResult) (float64, bool) {
			if len(r.ingest) == 0 {
				return 0, false
			}
			return medianOf(r.ingest, f), true
		})
	}
	day := func(format string, f func(r *dayResult) float64) func(r sysResult) (string, float64, bool) {
		return num(format, func(r sysResult) (float64, bool) {
			if r.day == nil {
				return 0, false
			}
			return f(r.day), true
		})
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

	if !bc.skipIngest {
		section(fmt.Sprintf("ingestion, %d series × %d samples", bc.ingest.Series, bc.ingest.Samples))
		for _, rw := range []row{
			{"server CPU-µs per sample, new series", ing("%.2f", func(r *ingestResult) float64 { return r.cpuPerSample(r.newCPU, r.newStats) })},
			{"server CPU-µs per sample, steady", ing("%.2f", func(r *ingestResult) float64 { return r.cpuPerSample(r.steadyCPU, r.steady) })},
			{"request latency p50 / p99, new series, ms", pair(ing("%.1f", func(r *ingestResult) float64 { return ms(r.newStats.Latency(0.5)) }),
				ing("%.1f", func(r *ingestResult) float64 { return ms(r.newStats.Latency(0.99)) }))},
			{"request latency p50, steady, ms", ing("%.1f", func(r *ingestResult) float64 { return ms(r.steady.Latency(0.5)) })},
			{"request latency p99, steady, ms", ing("%.1f", func(r *ingestResult) float64 { return ms(r.steady.Latency(0.99)) })},
			// Stalls of every sender (a checkpoint, a compaction) hide under the p99 of thousands
			// of requests.
			{"request latency p99.9 / max, steady, ms", pair(ing("%.1f", func(r *ingestResult) float64 { return ms(r.steady.Latency(0.999)) }),
				ing("%.1f", func(r *ingestResult) float64 { return ms(r.steady.Latency(1)) }))},
			{"peak RSS (VmHWM), MB", ing("%.0f", func(r *ingestResult) float64 { return mb(r.peakRSS) })},
			{"disk after a clean stop, MB", ing("%.1f", func(r *ingestResult) float64 { return mb(r.diskStop) })},
			{"caches on disk (VictoriaMetrics' cache/, left out above), MB", onlyVM(ing("%.1f", func(r *ingestResult) float64 { return mb(r.cache) }))},
			{"disk bytes per sample after the stop (live)", pair(ing("%.2f", func(r *ingestResult) float64 { return perSample(r.diskStop, r) }),
				ing("%.2f", func(r *ingestResult) float64 { return perSample(r.diskLive, r) }))},
			{"steady throughput, samples/s (client wall time)", ing("%.0f", func(r *ingestResult) float64 { return r.steady.SamplesPerSecond() })},
			{"server CPU seconds, new series + steady", ing("%.1f", func(r *ingestResult) float64 { return (r.newCPU + r.steadyCPU).Seconds() })},
			{"load generator CPU-µs per sample (competes for the same cores)", ing("%.2f", func(r *ingestResult) float64 {
				return float64(r.clientCPU.Nanoseconds()) / 1e3 / float64(r.newStats.Samples+r.steady.Samples)
			})},
			{"retries (5xx/429)", ing("%.0f", func(r *ingestResult) float64 { return float64(r.newStats.Retries + r.steady.Retries) })},
			{"series / samples counted back (checked exact)", text(func(r sysResult) string {
				if len(r.ingest) == 0 {
					return "–"
				}
				// Every run's counts are checked exact (runIngest).
				return fmt.Sprintf("%d / %d", r.ingest[0].series, r.ingest[0].samples)
			})},
		} {
			emit(rw)
		}
	}
	if bc.scrapeN > 0 {
		scr := func(format string, f func(r *scrapeResult) float64) func(r sysResult) (string, float64, bool) {
			return num(format, func(r sysResult) (float64, bool) {
				if len(r.scrape) == 0 {
					return 0, false
				}
				return medianOf(r.scrape, f), true
			})
		}
		section(fmt.Sprintf("scraping, %d targets × %d series every %s", bc.scrapeN, bc.scrapeS, scrapeInterval))
		for _, rw := range []row{
			{"server CPU-µs per sample, scraping", scr("%.2f", (*scrapeResult).cpuPerSample)},
			{"peak RSS (VmHWM), MB", scr("%.0f", func(r *scrapeResult) float64 { return mb(r.peakRSS) })},
			{"series counted back (checked exact)", text(func(r sysResult) string {
				if len(r.scrape) == 0 {
					return "–"
				}
				return strconv.FormatInt(r.scrape[0].series, 10)
			})},
		} {
			emit(rw)
		}
	}
	if !bc.skipDay {
		section(fmt.Sprintf("the day, %d series × %d samples", bc.day.Series, bc.day.Samples))
		for _, rw := range []row{
			{"load: server CPU-µs per sample", day("%.2f", func(r *dayResult) float64 { return float64(r.loadCPU.Nanoseconds()) / 1e3 / float64(r.load.Samples) })},
			{"load: wall seconds (client)", day("%.1f", func(r *dayResult) float64 { return r.load.Elapsed.Seconds() })},
			{"load: request latency p99, ms", day("%.1f", func(r *dayResult) float64 { return ms(r.load.Latency(0.99)) })},
			{"peak RSS (VmHWM) after the load, MB", day("%.0f", func(r *dayResult) float64 { return mb(r.peakRSS) })},
			{"compaction / flush and settling, s", day("%.1f", func(r *dayResult) float64 { return r.compactTime.Seconds() })},
			{"disk after compaction and a clean stop, MB", day("%.1f", func(r *dayResult) float64 { return mb(r.disk) })},
			{"caches on disk (VictoriaMetrics' cache/, left out above), MB", onlyVM(day("%.1f", func(r *dayResult) float64 { return mb(r.cache) }))},
			{"disk bytes per sample", day("%.2f", func(r *dayResult) float64 { return float64(r.disk) / float64(r.load.Samples) })},
			{"restart: start until ready, s", day("%.2f", func(r *dayResult) float64 { return r.restart.Seconds() })},
			{"series / samples counted back (checked exact)", text(func(r sysResult) string {
				if r.day == nil {
					return "–"
				}
				return fmt.Sprintf("%d / %d", r.day.series, r.day.samples)
			})},
		} {
			emit(rw)
		}
		section(fmt.Sprintf("range queries over the day, step 60 s, median of %d runs, ms (≠: answer differs from Prometheus's)", bc.queryRuns))
		for i, q := range DayQueries {
			emit(row{fmt.Sprintf("q%d `%s`", i+1, q), func(r sysResult) (string, float64, bool) {
				if r.day == nil {
					return "–", 0, false
				}
				qr := r.day.queries[i]
				v := ms(median(qr.runs))
				s := fmt.Sprintf("%.1f", v)
				switch {
				case qr.ans.err != "":
					s += " (error)"
				case qr.diff != "":
					s += " ≠"
				}
				return s, v, true
			}})
		}
		emit(row{"total of the medians, ms", day("%.1f", func(r *dayResult) float64 {
			var sum time.Duration
			for _, q := range r.queries {
				sum += median(q.runs)
			}
			return ms(sum)
		})})
		emit(row{"answers equal to Prometheus's", text(func(r sysResult) string {
			switch {
			case r.day == nil:
				return "–"
			case r.name == Prometheus:
				return "reference"
			case !bc.compared:
				return "not compared (Prometheus did not run)"
			}
			same := 0
			for _, q := range r.day.queries {
				if q.diff == "" && q.ans.err == "" {
					same++
				}
			}
			return fmt.Sprintf("%d of %d", same, len(r.day.queries))
		})})
	}
	b.WriteString("\n")
	return b.String()
}

// details lists what the table summarizes: data directories by kind of file, the size of each
// answer, and the first difference of every answer that is not Prometheus's.
func details(results []sysResult, bc benchConfig) string {
	var b strings.Builder
	for _, r := range results {
		for i, in := range r.ingest {
			fmt.Fprintf(&b, "\n%s, ingestion run %d: steady %.2f CPU-µs/sample, p99 %.1f ms, max %.1f ms; new series %.2f CPU-µs/sample; peak RSS %.0f MB; data directory after the stop, bytes: %s",
				r.name, i+1, in.cpuPerSample(in.steadyCPU, in.steady), float64(in.steady.Latency(0.99).Microseconds())/1e3,
				float64(in.steady.Latency(1).Microseconds())/1e3,
				in.cpuPerSample(in.newCPU, in.newStats), mb(in.peakRSS), strings.Join(in.diskFiles, " "))
		}
		if r.day != nil {
			fmt.Fprintf(&b, "\n%s, the day: data directory after compaction and the stop, bytes: %s", r.name, strings.Join(r.day.diskFiles, " "))
			if r.day.blockSamples > 0 {
				fmt.Fprintf(&b, "\n%s, the day: its blocks alone hold %d of the %d samples in %d bytes, %.2f bytes per sample (the rest is in the head: WAL and head chunks)",
					r.name, r.day.blockSamples, r.day.load.Samples, r.day.blockBytes, float64(r.day.blockBytes)/float64(r.day.blockSamples))
			}
		}
	}
	b.WriteString(turnRatios(results))
	if !bc.skipDay {
		b.WriteString("\n\nanswers (series / samples of the first run; the first difference from Prometheus's):")
		for i, q := range DayQueries {
			fmt.Fprintf(&b, "\nq%d %s", i+1, q)
			for _, r := range results {
				if r.day == nil {
					continue
				}
				qr := r.day.queries[i]
				fmt.Fprintf(&b, "\n    %s: ", r.name)
				if qr.ans.err != "" {
					fmt.Fprintf(&b, "error: %s", qr.ans.err)
				} else {
					fmt.Fprintf(&b, "%d series, %d samples, %d bytes, runs %s", len(qr.ans.matrix), qr.ans.samples, qr.ans.bytes, durations(qr.runs))
				}
				if qr.diff != "" {
					fmt.Fprintf(&b, "\n        differs: %s", qr.diff)
				}
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

func durations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(100 * time.Microsecond).String()
	}
	return strings.Join(s, " ")
}

// pair shows two figures as "a / b"; the ratio is of the first.
func pair(a, b func(r sysResult) (string, float64, bool)) func(r sysResult) (string, float64, bool) {
	return func(r sysResult) (string, float64, bool) {
		as, av, aok := a(r)
		bs, _, _ := b(r)
		if !aok {
			return as, 0, false
		}
		return as + " / " + bs, av, true
	}
}

// onlyVM leaves the cell empty for the systems that keep no caches on disk.
func onlyVM(f func(r sysResult) (string, float64, bool)) func(r sysResult) (string, float64, bool) {
	return func(r sysResult) (string, float64, bool) {
		if r.name != VictoriaMetrics {
			return "–", 0, false
		}
		return f(r)
	}
}

func text(f func(r sysResult) string) func(r sysResult) (string, float64, bool) {
	return func(r sysResult) (string, float64, bool) { return f(r), 0, false }
}

func perSample(bytes int64, r *ingestResult) float64 {
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

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
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

// turnRatios gives Metricstor's steady CPU and p99 over each peer's, run by run: runs of the same
// number are minutes apart (the servers take turns), so the machine's slow drifts cancel in
// their ratio, while the table's ratio of medians may pair runs far apart. The spread of these
// ratios is how far one benchmark's figure can be trusted.
func turnRatios(results []sysResult) string {
	var ms *sysResult
	for i := range results {
		if results[i].name == Metricstor {
			ms = &results[i]
		}
	}
	if ms == nil || len(ms.ingest) == 0 {
		return ""
	}
	var b strings.Builder
	for i := range results {
		peer := &results[i]
		n := min(len(ms.ingest), len(peer.ingest))
		if peer == ms || n == 0 {
			continue
		}
		for _, f := range []struct {
			name string
			of   func(r *ingestResult) float64
		}{
			{"steady CPU-µs/sample", func(r *ingestResult) float64 { return r.cpuPerSample(r.steadyCPU, r.steady) }},
			{"steady p99", func(r *ingestResult) float64 { return float64(r.steady.Latency(0.99)) }},
		} {
			ratios := make([]float64, 0, n)
			for run := range n {
				if d := f.of(peer.ingest[run]); d > 0 {
					ratios = append(ratios, f.of(ms.ingest[run])/d)
				}
			}
			if len(ratios) == 0 {
				continue
			}
			text := make([]string, len(ratios))
			for j, r := range ratios {
				text[j] = fmt.Sprintf("%.2f", r)
			}
			fmt.Fprintf(&b, "\n%s / %s, %s, run by run: %s (median %.2f)", Metricstor, peer.name, f.name,
				strings.Join(text, " "), medianOf(ratios, func(v float64) float64 { return v }))
		}
	}
	return b.String()
}
