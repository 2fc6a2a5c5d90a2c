package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/serverbench"
)

// Forwarding to a bigger system: README.md's "When one machine is not enough" runs
// examples/forward/remote_write.yaml over the default pipeline, and a real remote write receiver
// (the reference Prometheus with --web.enable-remote-write-receiver) holds what Metricstor holds.

// rawSeries runs query (a range selector) at ts against the Prometheus API at base and returns
// each series' raw samples as text, by series.
func rawSeries(t *testing.T, base, query string, ts time.Time) map[string]string {
	t.Helper()
	client, err := promapi.NewClient(promapi.Config{Address: base})
	if err != nil {
		t.Fatal(err)
	}
	res, _, _, err := promv1.NewAPI(client).Query(queryCtx(t), query, ts)
	if err != nil {
		t.Fatalf("%s: query %s: %s", base, query, apiError(err))
	}
	m, ok := res.(model.Matrix)
	if !ok {
		t.Fatalf("%s: query %s: %s, want a matrix", base, query, res.Type())
	}
	out := map[string]string{}
	for _, s := range m {
		var b strings.Builder
		for _, p := range s.Values {
			fmt.Fprintf(&b, "%d:%v ", p.Timestamp, p.Value)
		}
		for _, h := range s.Histograms {
			fmt.Fprintf(&b, "%d:%v ", h.Timestamp, h.Histogram)
		}
		out[s.Metric.String()] = b.String()
	}
	return out
}

// diffSeries describes how two results differ, series by series; empty when equal.
func diffSeries(got, want map[string]string) string {
	var lines []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			lines = append(lines, "missing "+k)
		} else if g != w {
			lines = append(lines, fmt.Sprintf("differs %s:\n   got  %s\n   want %s", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			lines = append(lines, "extra "+k)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestForwardRemoteWrite: OTLP metrics of every kind (gauge, counter, classic and native
// histogram, summary) and remote write series go into Metricstor running
// examples/forward/remote_write.yaml; once the exporter has sent them, a real receiver of remote
// write holds the same series with the same samples as Metricstor's own API returns: the reference
// Prometheus (--web.enable-remote-write-receiver) and single-node VictoriaMetrics (the storage of
// a VictoriaMetrics cluster, whose vminsert takes the same protocol). The README's copy of the
// example is the file.
func TestForwardRemoteWrite(t *testing.T) {
	checkREADMEExamples(t, "When one machine is not enough", "forward", []string{"remote_write.yaml"})
	binary := harness.Binary(t)
	t.Run("prometheus", func(t *testing.T) {
		peer := conformance.NewPrometheus(t, "prometheus (remote write receiver)", conformance.PrometheusBinary(t),
			conformance.QueryOnlyConfig, "--web.enable-remote-write-receiver")
		peer.Start(t)
		t.Cleanup(peer.Stop)
		testForward(t, binary, peer.URL()+"/api/v1/write", peer.URL(), func() {}, nil)
	})
	t.Run("victoriametrics", func(t *testing.T) {
		vm := serverbench.StartVictoriaMetrics(t, serverbench.VictoriaMetricsBinary(t))
		// VictoriaMetrics turns a native histogram into its own histogram series
		// (<name>_bucket{vmrange=...}, <name>_count, <name>_sum): those are compared by their
		// counts, the rest series by series.
		ms, f := testForward(t, binary, vm.WriteURL, vm.QueryURL, func() { vm.Flush(t) }, []string{expHistName})
		counts := rawSeries(t, vm.QueryURL, expHistName+`_count[10m]`, f.last().Add(time.Second))
		var want strings.Builder
		for i := range steps {
			for _, v := range instantVector(t, ms, `histogram_count(`+expHistName+`)`, f.at(i)) {
				fmt.Fprintf(&want, "%d:%v ", f.at(i).UnixMilli(), v)
			}
		}
		if len(counts) != 1 {
			t.Fatalf("VictoriaMetrics holds %d series of %s_count, want 1: %v", len(counts), expHistName, counts)
		}
		for k, got := range counts {
			if got != want.String() {
				t.Errorf("%s in VictoriaMetrics: %s, want the counts of Metricstor's native histogram %s", k, got, want.String())
			}
		}
	})
}

// testForward runs the example towards the peer at writeURL and compares what the peer's API at
// queryURL holds with Metricstor's, after flush; the metrics named in without (and their series
// with a suffix, name_...) are left out on both sides. It returns Metricstor's ports and the
// fixture pushed.
func testForward(t *testing.T, binary, writeURL, queryURL string, flush func(), without []string) (harness.Ports, fixture) {
	t.Setenv("METRICSTOR_FORWARD_URL", writeURL)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p := harness.Start(t, "metricstor (forwarding)", binary,
		"--config", cfg.Write(t), "--config", filepath.Join(root, "examples", "forward", "remote_write.yaml"))
	p.WaitFor(time.Minute, cfg.Probes()...)

	f := newFixture("forward-1", startTime())
	pushSteps(t, pushGRPC, cfg.Ports, f, 0, steps)
	var req prompb.WriteRequest
	for i := range 10 {
		for step := range steps {
			req.Timeseries = append(req.Timeseries, rwTimeseries(f.at(step).UnixMilli(), float64(i*100+step)+0.25,
				"__name__", "forward_rw_value", "job", "node", "instance", fmt.Sprintf("n%d", i)))
		}
	}
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &req); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}

	query := `{__name__=~"e2e_.+|forward_.+|target_info"}[10m]`
	at := f.last().Add(time.Second)
	local := rawSeries(t, cfg.Ports.PromQLURL(), query, at)
	names := map[string]bool{}
	for k := range local {
		names[k[:strings.IndexAny(k, "{")]] = true
	}
	for _, n := range append(expectedNames(), "forward_rw_value", expHistName) {
		if !names[n] {
			t.Fatalf("Metricstor does not hold %s: %v", n, slices.Sorted(maps.Keys(names)))
		}
	}
	leaveOut := func(m map[string]string) {
		for k := range m {
			for _, n := range without {
				if name := k[:strings.IndexAny(k, "{")]; name == n || strings.HasPrefix(name, n+"_") {
					delete(m, k)
				}
			}
		}
	}
	leaveOut(local)

	// The exporter sends from its queue: wait until the peer holds the same, then compare.
	var peerHas map[string]string
	deadline := time.Now().Add(time.Minute)
	for {
		flush()
		peerHas = rawSeries(t, queryURL, query, at)
		leaveOut(peerHas)
		if diffSeries(peerHas, local) == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := diffSeries(peerHas, local); d != "" {
		t.Errorf("the peer (got) and Metricstor (want) differ:\n%s", d)
	}
	t.Logf("%d series, the same in Metricstor and in the peer", len(local))
	return cfg.Ports, f
}
