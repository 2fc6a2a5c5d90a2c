package demotarget_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/demotarget"
)

func parse(t *testing.T, text []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", text, err)
	}
	return families
}

func scrape(t *testing.T, target demotarget.Target, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := target.Write(&buf, at); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// labelSets returns the sorted label sets of a family, each as name=value pairs; histogram
// buckets add their le values.
func labelSets(f *dto.MetricFamily) []string {
	var sets []string
	for _, m := range f.Metric {
		var pairs []string
		for _, l := range m.Label {
			pairs = append(pairs, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(pairs)
		base := strings.Join(pairs, ",")
		if h := m.Histogram; h != nil {
			for _, b := range h.Bucket {
				sets = append(sets, base+",le="+model.SampleValue(b.GetUpperBound()).String())
			}
		}
		sets = append(sets, base)
	}
	sort.Strings(sets)
	return sets
}

// The demo target serves the families of demo-metrics-sample.txt with the same names, types,
// HELP, label names and label value sets, plus demo_intermittent_metric when it is shown.
func TestFamiliesMatchSample(t *testing.T) {
	dir, err := conformance.Dir()
	if err != nil {
		t.Fatal(err)
	}
	sampleText, err := os.ReadFile(filepath.Join(dir, "demo-metrics-sample.txt"))
	if err != nil {
		t.Fatalf("%v (the sample is kept in %s)", err, conformance.DataDir)
	}
	sample := parse(t, sampleText)
	for instance := range 3 {
		target := demotarget.Target{Seed: 7, Instance: instance}
		sawIntermittent := false
		for s := range 120 {
			got := parse(t, scrape(t, target, time.Unix(1_800_000_000+int64(s), 0)))
			if _, ok := got["demo_intermittent_metric"]; ok {
				sawIntermittent = true
				delete(got, "demo_intermittent_metric")
			}
			if s > 0 {
				continue
			}
			for name, want := range sample {
				f, ok := got[name]
				if !ok {
					t.Errorf("instance %d: family %s missing", instance, name)
					continue
				}
				if f.GetType() != want.GetType() || f.GetHelp() != want.GetHelp() {
					t.Errorf("%s: type %s help %q, want %s %q", name, f.GetType(), f.GetHelp(), want.GetType(), want.GetHelp())
				}
				if g, w := labelSets(f), labelSets(want); strings.Join(g, "\n") != strings.Join(w, "\n") {
					t.Errorf("%s: label sets\n%s\nwant\n%s", name, strings.Join(g, "\n"), strings.Join(w, "\n"))
				}
			}
			for name := range got {
				if _, ok := sample[name]; !ok {
					t.Errorf("family %s is not in the sample", name)
				}
			}
		}
		if !sawIntermittent {
			t.Errorf("instance %d: demo_intermittent_metric never shown in 120s", instance)
		}
	}
}

// Values are a function of seed, instance and second; counters only grow between restarts and
// do restart; histogram buckets are cumulative; gauges move.
func TestValuesMoveLikeRealOnes(t *testing.T) {
	target := demotarget.Target{Seed: 1, Instance: 1}
	at := time.Unix(1_800_000_000, 0)
	if !bytes.Equal(scrape(t, target, at), scrape(t, target, at.Add(999*time.Millisecond))) {
		t.Error("two scrapes in the same second differ")
	}
	if bytes.Equal(scrape(t, target, at), scrape(t, demotarget.Target{Seed: 1, Instance: 2}, at)) {
		t.Error("instances 1 and 2 give the same values")
	}
	value := func(f map[string]*dto.MetricFamily, name string, i int) float64 {
		m := f[name].Metric[i]
		if m.Counter != nil {
			return m.Counter.GetValue()
		}
		return m.Gauge.GetValue()
	}
	resets, memoryChanges, intermittentChanges := 0, 0, 0
	var prev map[string]*dto.MetricFamily
	for s := range 600 {
		cur := parse(t, scrape(t, target, at.Add(time.Duration(s)*time.Second)))
		for _, m := range cur["demo_api_request_duration_seconds"].Metric {
			h := m.Histogram
			for j := 1; j < len(h.Bucket); j++ {
				if h.Bucket[j].GetCumulativeCount() < h.Bucket[j-1].GetCumulativeCount() {
					t.Fatalf("second %d: buckets not cumulative: %v", s, h)
				}
			}
			if n := len(h.Bucket); h.Bucket[n-1].GetCumulativeCount() > h.GetSampleCount() {
				t.Fatalf("second %d: last bucket above the count: %v", s, h)
			}
		}
		if prev != nil {
			reset := value(cur, "demo_cpu_usage_seconds_total", 0) < value(prev, "demo_cpu_usage_seconds_total", 0)
			if reset {
				resets++
			}
			for i := range 3 {
				if value(cur, "demo_cpu_usage_seconds_total", i) < value(prev, "demo_cpu_usage_seconds_total", i) != reset {
					t.Errorf("second %d: mode %d does not reset with the others", s, i)
				}
			}
			if !reset && value(cur, "demo_items_shipped_total", 0) < value(prev, "demo_items_shipped_total", 0) {
				t.Errorf("second %d: demo_items_shipped_total decreased without a restart", s)
			}
			if value(cur, "demo_memory_usage_bytes", 0) != value(prev, "demo_memory_usage_bytes", 0) {
				memoryChanges++
			}
			_, now := cur["demo_intermittent_metric"]
			_, before := prev["demo_intermittent_metric"]
			if now != before {
				intermittentChanges++
			}
		}
		prev = cur
	}
	if resets < 3 || resets > 6 {
		t.Errorf("%d counter resets in 600s, want one every 140s", resets)
	}
	if memoryChanges < 500 {
		t.Errorf("demo_memory_usage_bytes changed only %d times in 600s", memoryChanges)
	}
	if intermittentChanges < 10 {
		t.Errorf("demo_intermittent_metric appeared or disappeared only %d times in 600s", intermittentChanges)
	}
}
