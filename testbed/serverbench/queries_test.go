package serverbench

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/metricstor/metricstor/testbed/loadgen"
)

func TestDiffAnswers(t *testing.T) {
	series := func(v float64, labels ...string) *model.SampleStream {
		m := model.Metric{}
		for i := 0; i < len(labels); i += 2 {
			m[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
		}
		return &model.SampleStream{Metric: m, Values: []model.SamplePair{{Timestamp: 1000, Value: 1}, {Timestamp: 61000, Value: model.SampleValue(v)}}}
	}
	ref := answer{matrix: model.Matrix{series(2, "a", "x"), series(math.NaN(), "a", "y")}}
	for _, c := range []struct {
		name string
		got  answer
		want string // substring of the difference, "" for equal
	}{
		{"equal, other order", answer{matrix: model.Matrix{series(math.NaN(), "a", "y"), series(2, "a", "x")}}, ""},
		{"within 1e-6", answer{matrix: model.Matrix{series(2*(1+5e-7), "a", "x"), series(math.NaN(), "a", "y")}}, ""},
		{"beyond 1e-6", answer{matrix: model.Matrix{series(2*(1+5e-6), "a", "x"), series(math.NaN(), "a", "y")}}, "sample 1"},
		{"NaN against a number", answer{matrix: model.Matrix{series(2, "a", "x"), series(3, "a", "y")}}, "sample 1"},
		{"a name kept", answer{matrix: model.Matrix{series(2, "a", "x", "__name__", "m"), series(math.NaN(), "a", "y")}}, `missing, unmatched m{a="x"}`},
		{"a series less", answer{matrix: model.Matrix{series(2, "a", "x")}}, "missing"},
		{"an error", answer{err: "boom"}, "failed: boom"},
	} {
		got := diffAnswers(ref, c.got)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: diff %q, want %q", c.name, got, c.want)
		}
	}
}

func TestMedian(t *testing.T) {
	if m := median([]time.Duration{5, 1, 3}); m != 3 {
		t.Errorf("median of 5 1 3 = %d", m)
	}
	if m := median([]time.Duration{4, 1, 3, 2}); m != 2 {
		t.Errorf("median of 4 1 3 2 = %d", m)
	}
}

func TestMedianOf(t *testing.T) {
	id := func(v float64) float64 { return v }
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{7}, 7}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := medianOf(c.in, id); got != c.want {
			t.Errorf("median of %v = %v, want %v", c.in, got, c.want)
		}
	}
	runs := []*ingestResult{{peakRSS: 300}, {peakRSS: 100}, {peakRSS: 200}}
	if got := medianOf(runs, func(r *ingestResult) float64 { return float64(r.peakRSS) }); got != 200 {
		t.Errorf("median peak RSS of three runs = %v, want 200", got)
	}
}

func TestDirBreakdown(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{
		"wal/00000001":                         10,
		"01JABCDEFGHJKMNPQRSTVWXYZ0/chunks/01": 20,
		"01JABCDEFGHJKMNPQRSTVWXYZ1/index":     30,
		"data/small/2026_12/part":              40,
		"000001.sst":                           50,
		"MANIFEST-000001":                      60,
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := DirBreakdown(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"*.sst=50", "blocks/other=50", "data/small/other=40", "other=60", "wal/other=10"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestTurnRatios(t *testing.T) {
	// One sample, so CPU-µs per sample is the CPU in µs; one latency, so p99 is it.
	run := func(cpuUs int, p99 time.Duration) *ingestResult {
		return &ingestResult{steadyCPU: time.Duration(cpuUs) * time.Microsecond,
			steady: loadgen.Stats{Samples: 1, Latencies: []time.Duration{p99}}}
	}
	results := []sysResult{
		{name: VictoriaMetrics, ingest: []*ingestResult{run(10, 30), run(20, 40), run(10, 20)}},
		{name: Metricstor, ingest: []*ingestResult{run(9, 15), run(10, 40), run(12, 30)}},
		{name: Prometheus}, // no ingestion runs: left out
	}
	got := turnRatios(results)
	want := "\nmetricstor / victoriametrics, steady CPU-µs/sample, run by run: 0.90 0.50 1.20 (median 0.90)" +
		"\nmetricstor / victoriametrics, steady p99, run by run: 0.50 1.00 1.50 (median 1.00)"
	if got != want {
		t.Errorf("turnRatios =%s\nwant%s", got, want)
	}
	if got := turnRatios(results[:1]); got != "" {
		t.Errorf("without Metricstor: %q, want nothing", got)
	}
}
