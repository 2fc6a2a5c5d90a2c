package conformance

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
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
// restart of the systems under test in their middle, cross another boundary, and the second
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
	results    [][]Result // per instance, in the order of instances
}

// instance is one system under test and the protocol the reference sends it.
type instance struct {
	message string // MessageV1 or MessageV2
	way     string // how the series reach the store, when the system has more than one
	sys     System
	api     v1.API
	wire    *WireRecorder // the proxy the reference writes through
}

func (in *instance) protocol() string { return "remote write " + ProtocolName(in.message) }

// label names the instance in the report: its protocol, and its way when it has one.
func (in *instance) label() string {
	if in.way != "" {
		return in.protocol() + ", " + in.way
	}
	return in.protocol()
}

func (in *instance) String() string { return in.sys.Name() + " (" + in.label() + ")" }

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

	// One system under test per protocol, each a process of its own (own ports, own data), fed
	// by the same reference: every comparison runs on the same data in the same run. Metricstor
	// runs each protocol both ways its remote_write receiver writes: its series straight to the
	// exporter (direct_write, the default) and as pipeline data (what a pipeline with processors
	// does).
	promBinary := PrometheusBinary(t)
	kind := envOr("CONFORMANCE_SUT", "metricstor")
	type variant struct {
		message, way string
		start        func() System
	}
	var variants []variant
	switch kind {
	case "metricstor":
		binary := harness.Binary(t)
		for _, message := range []string{MessageV1, MessageV2} {
			variants = append(variants,
				variant{message, "direct", func() System { return StartMetricstor(t, binary, false) }},
				variant{message, "pipeline data", func() System { return StartMetricstor(t, binary, true) }})
		}
	case "prometheus":
		for _, message := range []string{MessageV1, MessageV2} {
			variants = append(variants, variant{message, "", func() System { return StartPrometheusSUT(t, promBinary) }})
		}
	default:
		t.Fatalf("CONFORMANCE_SUT: want metricstor or prometheus, got %q", kind)
	}
	var instances []*instance
	var writes []RemoteWrite
	for i, v := range variants {
		message := v.message
		in := &instance{message: message, way: v.way, sys: v.start()}
		if in.api, err = NewAPI(in.sys.QueryURL()); err != nil {
			t.Fatal(err)
		}
		in.wire = NewWireRecorder(t, in.sys.WriteURL())
		instances = append(instances, in)
		writes = append(writes, RemoteWrite{Name: fmt.Sprintf("rw%s-%d", ProtocolName(message), i), URL: in.wire.URL, Message: message})
	}
	targets := startDemoTargets(t, seed, demoTargetsNumber)
	scrapeConfig := ScrapeConfig(interval, targets, writes...)
	ref := NewPrometheus(t, "reference prometheus", promBinary, scrapeConfig, ReferenceFeatures)
	ref.Start(t)
	first := time.Now().Truncate(time.Second)
	t.Logf("reference %s scrapes %v every %s; query set: %d cases", ref.URL(), targets, interval, len(cases))
	for _, in := range instances {
		t.Logf("%s: remote write to %s through %s, queries at %s", in, in.sys.WriteURL(), in.wire.URL, in.sys.QueryURL())
	}

	refAPI, err := NewAPI(ref.URL())
	if err != nil {
		t.Fatal(err)
	}
	apis := make([]v1.API, len(instances))
	for i, in := range instances {
		apis[i] = in.api
	}
	ctx := context.Background()
	// freezeAndRun stops the reference's scraping and remote writing (it flushes its queues on
	// the way), so that every side holds the same data up to the end of the range and beyond
	// (queries with a negative offset look past it), waits until each system under test has it
	// all, and runs the query set against the reference and every system.
	freezeAndRun := func(name string) *phase {
		ref.Reconfigure(t, QueryOnlyConfig)
		end := time.Now().Truncate(time.Second)
		p := &phase{name: name, start: first, end: end}
		for _, in := range instances {
			waitIngested(t, ctx, in.String(), refAPI, in.api, first, end)
		}
		began := time.Now()
		p.results = Run(ctx, refAPI, apis, cases, v1.Range{Start: p.start, End: p.end, Step: step}, queryParallelism)
		withData := 0
		for _, r := range p.results[0] {
			if r.HasData {
				withData++
			}
		}
		t.Logf("%s: range %s .. %s step %s: %d cases with data in the reference; queries took %s", name,
			p.start.Format(time.TimeOnly), p.end.Format(time.TimeOnly), step, withData, time.Since(began).Round(time.Second))
		for i, in := range instances {
			t.Logf("%s: %s: %s; wire: %s", name, in, score(p.results[i]), in.wire.Summary())
			if pc, ok := in.sys.(interface{ Partitions() (float64, error) }); ok {
				n, err := pc.Partitions()
				t.Logf("%s: %s: the store holds %v time partitions (%v)", name, in, n, err)
				if err == nil && n < 3 {
					t.Errorf("%s: %s: the data spans %v partitions, want at least 3 (two boundaries)", name, in, n)
				}
			}
		}
		return p
	}

	sleepUntil(first.Add(span))
	before := freezeAndRun("before restart")
	// Scraping resumes; halfway through the second span the systems under test restart while
	// the reference keeps sending (its remote write retries until each is back).
	ref.Reconfigure(t, scrapeConfig)
	sleepUntil(time.Now().Add(spanAfter / 2))
	for _, in := range instances {
		t.Logf("restarting %s", in)
		in.sys.Restart(t)
	}
	sleepUntil(time.Now().Add(spanAfter / 2))
	after := freezeAndRun("after restart")

	// Each instance received the protocol meant for it, as seen on the wire: the Content-Type of
	// the requests and the answers (only a 2.0 answer reports the samples written).
	wire := make([]error, len(instances))
	for i, in := range instances {
		wire[i] = in.wire.Check(in.message)
	}

	logMetadata(t, ctx, instances)

	phases := []*phase{before, after}
	report, final := formatReport(kind, instances, phases, wire, len(cases))
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
	for i, in := range instances {
		if wire[i] != nil {
			t.Errorf("%s did not receive %s as expected: %v", in, in.protocol(), wire[i])
		}
	}
	if failed := countFailed(final); failed > 0 {
		t.Errorf("%d of %d cases differ from the reference for at least one protocol (report in %s)", failed, len(final), filepath.Join(out, "report.txt"))
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

// logMetadata logs how the metric metadata (/api/v1/metadata) of the instances compares: 1.0
// sends it in requests of its own, 2.0 with each series (the reference's metadata-wal-records).
// The reference itself cannot be asked: frozen, it has no targets, and its metadata API only
// reports those of targets. A Prometheus as system under test reports none either.
func logMetadata(t *testing.T, ctx context.Context, instances []*instance) {
	t.Helper()
	metas := make([]map[string][]v1.Metadata, len(instances))
	for i, in := range instances {
		m, err := in.api.Metadata(ctx, "", "")
		if err != nil {
			t.Logf("metadata of %s: %v", in, err)
			return
		}
		for _, entries := range m {
			slices.SortFunc(entries, func(a, b v1.Metadata) int {
				return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
			})
		}
		metas[i] = m
	}
	for i := 1; i < len(instances); i++ {
		var differ []string
		for name, want := range metas[0] {
			if got := metas[i][name]; !slices.Equal(got, want) {
				differ = append(differ, fmt.Sprintf("%s: %v / %v", name, want, got))
			}
		}
		for name, got := range metas[i] {
			if _, ok := metas[0][name]; !ok {
				differ = append(differ, fmt.Sprintf("%s: none / %v", name, got))
			}
		}
		slices.Sort(differ)
		t.Logf("metadata: %s has %d metric families, %s %d; %d differ %v", instances[0], len(metas[0]),
			instances[i], len(metas[i]), len(differ), differ[:min(len(differ), 5)])
	}
}

// waitIngested waits until the system under test (named name) returns the same raw samples in
// [start, end] as the reference, so that remote write lag does not count as a difference. It
// gives up after ingestionTimeout, logging the first difference (the comparison then shows its
// effects).
func waitIngested(t *testing.T, ctx context.Context, name string, ref, sut v1.API, start, end time.Time) {
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
			t.Logf("the raw samples of %s still differ after %s: %s at %s: %s",
				name, ingestionTimeout, query, end.Format(time.TimeOnly), diff)
			return
		}
		time.Sleep(time.Second)
	}
}

// formatReport writes the report: per phase the score of each instance and its failing cases,
// each named with its protocol; per instance its score over the phases; the wire checks; and
// last the combined score. It returns the report and the combined results (a case passes when it
// passes in every phase for every instance; a failing case carries its first failure).
func formatReport(sutName string, instances []*instance, phases []*phase, wire []error, n int) (string, []Result) {
	var sb strings.Builder
	protocols := make([]string, len(instances))
	for i, in := range instances {
		protocols[i] = in.label()
	}
	fmt.Fprintf(&sb, "PromQL conformance of %s against Prometheus %s, %d cases, one instance per protocol and way: %s\n",
		sutName, PrometheusVersion, n, strings.Join(protocols, ", "))
	perInstance := make([][]Result, len(instances))
	for i := range instances {
		perInstance[i] = slices.Clone(phases[0].results[i])
	}
	for _, p := range phases {
		scores := make([]string, len(instances))
		for i, in := range instances {
			scores[i] = in.label() + ": " + score(p.results[i])
		}
		fmt.Fprintf(&sb, "\n== %s: range %s .. %s: %s\n", p.name, p.start.UTC().Format(time.RFC3339), p.end.UTC().Format(time.RFC3339), strings.Join(scores, "; "))
		for i, in := range instances {
			for j, r := range p.results[i] {
				if !r.Passed() {
					fmt.Fprintf(&sb, "FAIL [%s] %s\n     %s\n", in.label(), r.Query, r.Diff)
				}
				if perInstance[i][j].Passed() {
					perInstance[i][j] = r
				}
			}
		}
	}
	final := slices.Clone(perInstance[0])
	sb.WriteString("\n")
	for i, in := range instances {
		fmt.Fprintf(&sb, "%s: %s (a case passes when it passes in every phase)\n", in.label(), score(perInstance[i]))
		for j, r := range perInstance[i] {
			if final[j].Passed() {
				final[j] = r
			}
		}
	}
	for i, in := range instances {
		status := "ok"
		if wire[i] != nil {
			status = "FAIL: " + wire[i].Error()
		}
		fmt.Fprintf(&sb, "wire check %s: %s (%s)\n", in.label(), status, in.wire.Summary())
	}
	fmt.Fprintf(&sb, "a case passes when it passes in every phase for every instance\n%s\n", score(final))
	return sb.String(), final
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
