package conformance

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/metricstor/metricstor/testbed/demotarget"
	"github.com/metricstor/metricstor/testbed/harness"
)

// Settings of TestConformance, from the environment (defaults in parentheses):
//
//	METRICSTOR_CONFORMANCE=1           run it at all (`make conformance` sets it)
//	CONFORMANCE_SUT                    metricstor (default) or prometheus, to validate the harness
//	CONFORMANCE_SCRAPE_INTERVAL        the reference's scrape interval (1s)
//	CONFORMANCE_SPAN                   data gathered before the restart (150s)
//	CONFORMANCE_SPAN_AFTER_RESTART     data gathered after it (60s)
//	CONFORMANCE_STEP                   step of the range queries (10s)
//	CONFORMANCE_SEED                   seed of the demo targets (1)
//	CONFORMANCE_OUT                    folder for report.txt and score (a temporary one)
//
// With a 1s scrape interval, 150s give every series more than one full chunk (120 samples) and
// two boundaries of the 1m partitions before the first comparison; the 60s after it, with the
// restart of the system under test in their middle, cross another boundary, and the second
// comparison covers the whole run, the oldest (closed) partitions included.
const (
	defaultInterval   = time.Second
	defaultSpan       = 150 * time.Second
	defaultSpanAfter  = 60 * time.Second
	defaultStep       = 10 * time.Second
	queryParallelism  = 4
	ingestionTimeout  = 2 * time.Minute
	demoTargetsNumber = 3
)

type phase struct {
	name       string
	start, end time.Time
	results    []Result
}

func TestConformance(t *testing.T) {
	if os.Getenv("METRICSTOR_CONFORMANCE") == "" {
		t.Skip("the conformance run takes minutes: run `make conformance`, or set METRICSTOR_CONFORMANCE=1")
	}
	dir, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	cases, err := LoadCases(dir)
	if err != nil {
		t.Fatal(err)
	}
	interval := envDuration(t, "CONFORMANCE_SCRAPE_INTERVAL", defaultInterval)
	span := envDuration(t, "CONFORMANCE_SPAN", defaultSpan)
	spanAfter := envDuration(t, "CONFORMANCE_SPAN_AFTER_RESTART", defaultSpanAfter)
	step := envDuration(t, "CONFORMANCE_STEP", defaultStep)
	seed, err := strconv.ParseUint(envOr("CONFORMANCE_SEED", "1"), 10, 64)
	if err != nil {
		t.Fatalf("CONFORMANCE_SEED: %v", err)
	}
	out := os.Getenv("CONFORMANCE_OUT")
	if out == "" {
		out = t.TempDir()
	}

	promBinary := PrometheusBinary(t)
	var sut System
	switch kind := envOr("CONFORMANCE_SUT", "metricstor"); kind {
	case "metricstor":
		sut = StartMetricstor(t, harness.Binary(t))
	case "prometheus":
		sut = StartPrometheusSUT(t, promBinary)
	default:
		t.Fatalf("CONFORMANCE_SUT: want metricstor or prometheus, got %q", kind)
	}
	targets := startDemoTargets(t, seed, demoTargetsNumber)
	scrapeConfig := ScrapeConfig(interval, targets, sut.WriteURL())
	ref := NewPrometheus(t, "reference prometheus", promBinary, scrapeConfig)
	ref.Start(t)
	first := time.Now().Truncate(time.Second)
	t.Logf("reference %s scrapes %v every %s, remote-writes to %s (%s); query set: %d cases",
		ref.URL(), targets, interval, sut.WriteURL(), sut.Name(), len(cases))

	refAPI, err := NewAPI(ref.URL())
	if err != nil {
		t.Fatal(err)
	}
	sutAPI, err := NewAPI(sut.QueryURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// freezeAndRun stops the reference's scraping and remote writing (it flushes its queues on
	// the way), so that both sides hold the same data up to the end of the range and beyond
	// (queries with a negative offset look past it), waits until the system under test has it
	// all, and runs the query set.
	freezeAndRun := func(name string) *phase {
		ref.Reconfigure(t, QueryOnlyConfig)
		end := time.Now().Truncate(time.Second)
		p := &phase{name: name, start: first, end: end}
		waitIngested(t, ctx, refAPI, sutAPI, first, end)
		began := time.Now()
		p.results = Run(ctx, refAPI, sutAPI, cases, v1.Range{Start: p.start, End: p.end, Step: step}, queryParallelism)
		withData := 0
		for _, r := range p.results {
			if r.HasData {
				withData++
			}
		}
		t.Logf("%s: range %s .. %s step %s: %s (%d cases with data in the reference; queries took %s)", name,
			p.start.Format(time.TimeOnly), p.end.Format(time.TimeOnly), step, score(p.results), withData,
			time.Since(began).Round(time.Second))
		if pc, ok := sut.(interface{ Partitions() (float64, error) }); ok {
			n, err := pc.Partitions()
			t.Logf("%s: the store holds %v time partitions (%v)", name, n, err)
			if err == nil && n < 3 {
				t.Errorf("%s: the data spans %v partitions, want at least 3 (two boundaries)", name, n)
			}
		}
		return p
	}

	sleepUntil(first.Add(span))
	before := freezeAndRun("before restart")
	// Scraping resumes; halfway through the second span the system under test restarts while
	// the reference keeps sending (its remote write retries until it is back).
	ref.Reconfigure(t, scrapeConfig)
	sleepUntil(time.Now().Add(spanAfter / 2))
	t.Logf("restarting %s", sut.Name())
	sut.Restart(t)
	sleepUntil(time.Now().Add(spanAfter / 2))
	after := freezeAndRun("after restart")

	// A case passes when it passes in every phase.
	final := make([]Result, len(cases))
	for i := range cases {
		final[i] = before.results[i]
		if final[i].Passed() {
			final[i] = after.results[i]
		}
	}
	report := formatReport(sut.Name(), []*phase{before, after}, final)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "report.txt"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "score"), []byte(score(final)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + report)
	if failed := countFailed(final); failed > 0 {
		t.Errorf("%d of %d cases differ from the reference (report in %s)", failed, len(final), filepath.Join(out, "report.txt"))
	}
}

// startDemoTargets serves n demo instances on free loopback ports and returns their addresses.
func startDemoTargets(t *testing.T, seed uint64, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen for demo target %d: %v", i, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", demotarget.Target{Seed: seed, Instance: i})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(func() { _ = srv.Close() })
		addrs[i] = l.Addr().String()
	}
	return addrs
}

// waitIngested waits until the system under test returns the same raw samples in [start, end]
// as the reference, so that remote write lag does not count as a difference. It gives up after
// ingestionTimeout, logging the first difference (the comparison then shows its effects).
func waitIngested(t *testing.T, ctx context.Context, ref, sut v1.API, start, end time.Time) {
	t.Helper()
	query := fmt.Sprintf(`{job="demo"}[%ds]`, int(end.Sub(start).Seconds())+1)
	deadline := time.Now().Add(ingestionTimeout)
	for {
		want, _, _, err := ref.Query(ctx, query, end)
		if err != nil {
			t.Fatalf("reference: %s: %v", query, err)
		}
		got, _, _, gotErr := sut.Query(ctx, query, end)
		var diff string
		if gotErr != nil {
			diff = gotErr.Error()
		} else {
			diff = Diff(want, got)
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Logf("the raw samples of the system under test still differ after %s: %s at %s: %s",
				ingestionTimeout, query, end.Format(time.TimeOnly), diff)
			return
		}
		time.Sleep(time.Second)
	}
}

func formatReport(sutName string, phases []*phase, final []Result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "PromQL conformance of %s against Prometheus %s, %d cases\n", sutName, PrometheusVersion, len(final))
	for _, p := range phases {
		fmt.Fprintf(&sb, "\n== %s: range %s .. %s: %s\n", p.name, p.start.UTC().Format(time.RFC3339), p.end.UTC().Format(time.RFC3339), score(p.results))
		for _, r := range p.results {
			if !r.Passed() {
				fmt.Fprintf(&sb, "FAIL %s\n     %s\n", r.Query, r.Diff)
			}
		}
	}
	fmt.Fprintf(&sb, "\na case passes when it passes in every phase\n%s\n", score(final))
	return sb.String()
}

func countFailed(results []Result) int {
	n := 0
	for _, r := range results {
		if !r.Passed() {
			n++
		}
	}
	return n
}

func score(results []Result) string {
	failed := countFailed(results)
	return fmt.Sprintf("%d passed, %d failed", len(results)-failed, failed)
}

func sleepUntil(t time.Time) { time.Sleep(time.Until(t)) }

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s: want a positive duration, got %q", name, v)
	}
	return d
}
