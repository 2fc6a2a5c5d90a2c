package e2e

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const allSeries = `{job="shop/checkout"}`

// point is one expected value of a series at a timestamp.
type point struct {
	ts    time.Time
	value float64
	hist  *model.SampleHistogram
}

type series struct {
	metric model.Metric
	points []point
}

// expectedSeries returns, per series key, the points of the fixtures at steps from..to-1, taken
// at the timestamps at(i) (the raw sample times, or the evaluation times of a range query).
func expectedSeries(fixtures []fixture, from, to int, at func(f fixture, i int) time.Time) map[string]*series {
	out := map[string]*series{}
	for _, f := range fixtures {
		for i := from; i < to; i++ {
			for _, s := range f.expected(i) {
				key := sampleKey(s.metric)
				if out[key] == nil {
					out[key] = &series{metric: s.metric}
				}
				out[key].points = append(out[key].points, point{ts: at(f, i), value: s.value, hist: s.histogram})
			}
		}
	}
	return out
}

func sampleTime(f fixture, i int) time.Time { return f.at(i) }

// checkMatrix asserts that got holds exactly the series of want, with exactly their points.
func checkMatrix(t *testing.T, what string, got model.Matrix, want map[string]*series) {
	t.Helper()
	seen := map[string]bool{}
	for _, ss := range got {
		key := sampleKey(ss.Metric)
		seen[key] = true
		w, ok := want[key]
		if !ok {
			t.Errorf("%s: unexpected series %s", what, key)
			continue
		}
		var gotPoints []string
		for _, p := range ss.Values {
			gotPoints = append(gotPoints, fmt.Sprintf("%d=%v", int64(p.Timestamp), float64(p.Value)))
		}
		for _, p := range ss.Histograms {
			gotPoints = append(gotPoints, fmt.Sprintf("%d=%s", int64(p.Timestamp), p.Histogram))
		}
		var wantPoints []string
		for _, p := range w.points {
			if p.hist != nil {
				wantPoints = append(wantPoints, fmt.Sprintf("%d=%s", p.ts.UnixMilli(), p.hist))
			} else {
				wantPoints = append(wantPoints, fmt.Sprintf("%d=%v", p.ts.UnixMilli(), p.value))
			}
		}
		if !slices.Equal(gotPoints, wantPoints) {
			t.Errorf("%s: series %s:\n got  %v\n want %v", what, key, gotPoints, wantPoints)
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("%s: missing series %s", what, key)
		}
	}
}

// checkVector asserts that got holds exactly the expected samples, each at timestamp ts.
func checkVector(t *testing.T, what string, got model.Vector, want []expectedSample, ts time.Time) {
	t.Helper()
	wantByKey := map[string]expectedSample{}
	for _, s := range want {
		wantByKey[sampleKey(s.metric)] = s
	}
	seen := map[string]bool{}
	for _, s := range got {
		key := sampleKey(s.Metric)
		seen[key] = true
		w, ok := wantByKey[key]
		if !ok {
			t.Errorf("%s: unexpected sample %s", what, s)
			continue
		}
		if int64(s.Timestamp) != ts.UnixMilli() {
			t.Errorf("%s: %s: timestamp %d, want %d", what, key, int64(s.Timestamp), ts.UnixMilli())
		}
		switch {
		case w.histogram != nil:
			if s.Histogram == nil || s.Histogram.String() != w.histogram.String() {
				t.Errorf("%s: %s: histogram %s, want %s", what, key, s.Histogram, w.histogram)
			}
		case s.Histogram != nil:
			t.Errorf("%s: %s: got histogram %s, want float %v", what, key, s.Histogram, w.value)
		case float64(s.Value) != w.value:
			t.Errorf("%s: %s: value %v, want %v", what, key, float64(s.Value), w.value)
		}
	}
	for key := range wantByKey {
		if !seen[key] {
			t.Errorf("%s: missing sample %s", what, key)
		}
	}
}

// checkReadBack asserts everything the Prometheus API answers about fixtures whose steps
// 0..steps-1 have all been pushed.
func checkReadBack(t *testing.T, api promv1.API, fixtures []fixture) {
	t.Helper()
	last := fixtures[0].last()
	first := fixtures[0].at(0)
	for _, f := range fixtures[1:] {
		if !f.last().Equal(last) {
			t.Fatalf("fixtures must share timestamps")
		}
	}
	lastStep := steps - 1

	t.Run("raw_samples", func(t *testing.T) {
		// A range selector returns the stored samples with their own timestamps.
		q := fmt.Sprintf("%s[%ds]", allSeries, int(last.Sub(first).Seconds())+1)
		res, warn, _, err := api.Query(queryCtx(t), q, last)
		if err != nil {
			t.Fatalf("query %s: %s", q, apiError(err))
		}
		checkNoWarnings(t, q, warn)
		m, ok := res.(model.Matrix)
		if !ok {
			t.Fatalf("query %s: got %s, want a matrix", q, res.Type())
		}
		checkMatrix(t, q, m, expectedSeries(fixtures, 0, steps, sampleTime))
	})

	t.Run("instant", func(t *testing.T) {
		// Between two steps, an instant query answers the latest sample before it.
		at := fixtures[0].at(2).Add(7 * time.Second)
		res, warn, _, err := api.Query(queryCtx(t), allSeries, at)
		if err != nil {
			t.Fatalf("query %s: %s", allSeries, apiError(err))
		}
		checkNoWarnings(t, allSeries, warn)
		v, ok := res.(model.Vector)
		if !ok {
			t.Fatalf("query %s: got %s, want a vector", allSeries, res.Type())
		}
		var want []expectedSample
		for _, f := range fixtures {
			want = append(want, f.expected(2)...)
		}
		checkVector(t, allSeries, v, want, at)
	})

	t.Run("range", func(t *testing.T) {
		r := promv1.Range{Start: first, End: last, Step: step}
		res, warn, _, err := api.QueryRange(queryCtx(t), allSeries, r)
		if err != nil {
			t.Fatalf("query_range %s: %s", allSeries, apiError(err))
		}
		checkNoWarnings(t, allSeries, warn)
		m, ok := res.(model.Matrix)
		if !ok {
			t.Fatalf("query_range %s: got %s, want a matrix", allSeries, res.Type())
		}
		checkMatrix(t, "query_range "+allSeries, m, expectedSeries(fixtures, 0, steps, sampleTime))
	})

	// Functions over the last minute at the last step: one sample per instance, labelled with
	// job and instance (and the point attributes the aggregation keeps).
	functions := []struct {
		name   string
		query  string
		extra  []string
		expect float64
	}{
		{"rate", "rate(" + counterName + "[1m])", []string{"http_request_method", "GET", "http_response_status_code", "200"}, counterRate},
		{"histogram_quantile_classic", "histogram_quantile(0.5, rate(" + histName + "_bucket[1m]))", []string{"http_request_method", "GET"}, classicMedian},
		{"histogram_quantile_native", "histogram_quantile(0.75, rate(" + expHistName + "[1m]))", []string{"http_request_method", "GET"}, nativeP75},
	}
	for _, fn := range functions {
		t.Run(fn.name, func(t *testing.T) {
			res, warn, _, err := api.Query(queryCtx(t), fn.query, last)
			if err != nil {
				t.Fatalf("query %s: %s", fn.query, apiError(err))
			}
			checkNoWarnings(t, fn.query, warn)
			v, ok := res.(model.Vector)
			if !ok {
				t.Fatalf("query %s: got %s, want a vector", fn.query, res.Type())
			}
			if len(v) != len(fixtures) {
				t.Fatalf("query %s: got %d samples, want %d: %v", fn.query, len(v), len(fixtures), v)
			}
			for _, f := range fixtures {
				want := f.labels("", fn.extra...)
				delete(want, model.MetricNameLabel)
				var found bool
				for _, s := range v {
					if !s.Metric.Equal(want) {
						continue
					}
					found = true
					if math.Abs(float64(s.Value)-fn.expect) > 1e-9 {
						t.Errorf("query %s: %s = %v, want %v", fn.query, want, float64(s.Value), fn.expect)
					}
					if int64(s.Timestamp) != last.UnixMilli() {
						t.Errorf("query %s: %s: timestamp %d, want %d", fn.query, want, int64(s.Timestamp), last.UnixMilli())
					}
				}
				if !found {
					t.Errorf("query %s: no sample with labels %s in %v", fn.query, want, v)
				}
			}
		})
	}

	t.Run("series", func(t *testing.T) {
		got, warn, _, err := api.Series(queryCtx(t), []string{allSeries}, first, last)
		if err != nil {
			t.Fatalf("series %s: %s", allSeries, apiError(err))
		}
		checkNoWarnings(t, "series", warn)
		var gotKeys, wantKeys []string
		for _, ls := range got {
			gotKeys = append(gotKeys, model.Metric(ls).String())
		}
		for _, f := range fixtures {
			for _, s := range f.expected(lastStep) {
				wantKeys = append(wantKeys, sampleKey(s.metric))
			}
		}
		sort.Strings(gotKeys)
		sort.Strings(wantKeys)
		if !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("series %s:\n got  %s\n want %s", allSeries, strings.Join(gotKeys, "\n      "), strings.Join(wantKeys, "\n      "))
		}
	})

	t.Run("label_names", func(t *testing.T) {
		got, warn, _, err := api.LabelNames(queryCtx(t), []string{allSeries}, first, last)
		if err != nil {
			t.Fatalf("labels: %s", apiError(err))
		}
		checkNoWarnings(t, "labels", warn)
		want := []string{"__name__", "cpu", "deployment_environment_name", "host_name", "http_request_method",
			"http_response_status_code", "instance", "job", "le", "quantile"}
		if !slices.Equal(labelNames(got), want) {
			t.Errorf("labels:\n got  %v\n want %v", got, want)
		}
	})

	t.Run("label_values", func(t *testing.T) {
		got, warn, _, err := api.LabelValues(queryCtx(t), model.MetricNameLabel, []string{allSeries}, first, last)
		if err != nil {
			t.Fatalf("label values of __name__: %s", apiError(err))
		}
		checkNoWarnings(t, "label values", warn)
		want := slices.Compact(expectedNames())
		if !slices.Equal(labelValues(got), want) {
			t.Errorf("label values of __name__:\n got  %v\n want %v", got, want)
		}
		got, _, _, err = api.LabelValues(queryCtx(t), "instance", nil, first, last)
		if err != nil {
			t.Fatalf("label values of instance: %s", apiError(err))
		}
		var wantInstances []string
		for _, f := range fixtures {
			wantInstances = append(wantInstances, f.instance)
		}
		sort.Strings(wantInstances)
		if !slices.Equal(labelValues(got), wantInstances) {
			t.Errorf("label values of instance: got %v, want %v", got, wantInstances)
		}
		got, _, _, err = api.LabelValues(queryCtx(t), "le", []string{`{__name__="` + histName + `_bucket"}`}, first, last)
		if err != nil {
			t.Fatalf("label values of le: %s", apiError(err))
		}
		if want := []string{"+Inf", "0.1", "0.5", "1"}; !slices.Equal(labelValues(got), want) {
			t.Errorf("label values of le: got %v, want %v", got, want)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		got, err := api.Metadata(queryCtx(t), "", "")
		if err != nil {
			t.Fatalf("metadata: %s", apiError(err))
		}
		want := map[string][]promv1.Metadata{
			gaugeName:     {{Type: promv1.MetricTypeGauge, Help: "CPU utilization", Unit: ""}},
			counterName:   {{Type: promv1.MetricTypeCounter, Help: "Requests served", Unit: ""}},
			histName:      {{Type: promv1.MetricTypeHistogram, Help: "Request duration", Unit: "seconds"}},
			expHistName:   {{Type: promv1.MetricTypeHistogram, Help: "Response size", Unit: "bytes"}},
			summaryName:   {{Type: promv1.MetricTypeSummary, Help: "Latency", Unit: "milliseconds"}},
			"target_info": {{Type: promv1.MetricTypeGauge, Help: "Target metadata", Unit: ""}},
		}
		if fmt.Sprint(sortedMetadata(got)) != fmt.Sprint(sortedMetadata(want)) {
			t.Errorf("metadata:\n got  %v\n want %v", sortedMetadata(got), sortedMetadata(want))
		}
		one, err := api.Metadata(queryCtx(t), counterName, "")
		if err != nil {
			t.Fatalf("metadata of %s: %s", counterName, apiError(err))
		}
		if fmt.Sprint(sortedMetadata(one)) != fmt.Sprint(sortedMetadata(map[string][]promv1.Metadata{counterName: want[counterName]})) {
			t.Errorf("metadata of %s: got %v", counterName, one)
		}
	})
}

func labelNames(ns model.LabelNames) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = string(n)
	}
	return out
}

func labelValues(vs model.LabelValues) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func sortedMetadata(m map[string][]promv1.Metadata) []string {
	var out []string
	for name, mds := range m {
		for _, md := range mds {
			out = append(out, fmt.Sprintf("%s{type=%s,unit=%q,help=%q}", name, md.Type, md.Unit, md.Help))
		}
	}
	sort.Strings(out)
	return out
}

func checkNoWarnings(t *testing.T, what string, warn promv1.Warnings) {
	t.Helper()
	if len(warn) > 0 {
		t.Errorf("%s: unexpected warnings: %v", what, warn)
	}
}

func vectorOf(t *testing.T, query string, res model.Value) model.Vector {
	t.Helper()
	v, ok := res.(model.Vector)
	if !ok {
		t.Fatalf("query %s: got %s, want a vector", query, res.Type())
	}
	return v
}
