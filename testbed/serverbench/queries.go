package serverbench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// DayQueries are the range queries run over the 24 h dataset: what a node-exporter dashboard
// asks (rates by instance and mode, network and disk throughput, temperatures, free space), plus
// two that touch every series (count, topk). Each is run with step 60 s over the whole day.
var DayQueries = []string{
	`sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))`,
	`avg by (mode) (irate(node_cpu_seconds_total[5m]))`,
	`sum by (device) (rate(node_network_receive_bytes_total[5m]))`,
	`topk(5, rate(node_disk_written_bytes_total[5m]))`,
	`avg_over_time(node_hwmon_temp_celsius[10m])`,
	`max_over_time(node_filesystem_avail_bytes{mountpoint="/"}[1h])`,
	`1 - node_filesystem_avail_bytes / node_filesystem_size_bytes`,
	`quantile(0.9, rate(node_disk_reads_completed_total[5m]))`,
	`increase(node_network_transmit_packets_total[1h])`,
	`count({job="loadgen"})`,
	`deriv(node_thermal_zone_temp[15m])`,
}

// answer is what one run of a range query returned.
type answer struct {
	matrix  model.Matrix
	err     string // the API's error, or a transport or decoding error
	bytes   int
	samples int
}

// queryRange runs a range query (POST form) and returns the time until the whole response was
// read (decoding it is the client's cost, not the server's) and the answer.
func queryRange(base, query string, start, end time.Time, step time.Duration) (time.Duration, answer) {
	v := url.Values{"query": {query}, "start": {unixSeconds(start)}, "end": {unixSeconds(end)},
		"step": {fmt.Sprint(step.Seconds())}}
	client := &http.Client{Timeout: 5 * time.Minute}
	t0 := time.Now()
	resp, err := client.PostForm(base+"/api/v1/query_range", v)
	if err != nil {
		return time.Since(t0), answer{err: err.Error()}
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	elapsed := time.Since(t0)
	if err != nil {
		return elapsed, answer{err: err.Error()}
	}
	var env struct {
		Status    string `json:"status"`
		Error     string `json:"error"`
		ErrorType string `json:"errorType"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	a := answer{bytes: len(body)}
	if err := json.Unmarshal(body, &env); err != nil {
		a.err = fmt.Sprintf("%s: %v", resp.Status, err)
		return elapsed, a
	}
	if env.Status != "success" {
		a.err = fmt.Sprintf("%s: %s: %s", resp.Status, env.ErrorType, env.Error)
		return elapsed, a
	}
	if env.Data.ResultType != "matrix" {
		a.err = fmt.Sprintf("result type %q, want matrix", env.Data.ResultType)
		return elapsed, a
	}
	if err := json.Unmarshal(env.Data.Result, &a.matrix); err != nil {
		a.err = fmt.Sprintf("decode the matrix: %v", err)
		return elapsed, a
	}
	for _, s := range a.matrix {
		a.samples += len(s.Values) + len(s.Histograms)
	}
	return elapsed, a
}

func unixSeconds(t time.Time) string {
	ms := t.UnixMilli()
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// relTolerance is the relative difference allowed between two values of the same answer: the
// conformance run allows 1e-5 (prometheus/compliance's figure, for engines that sum in another
// order); equal data in equal order should agree far closer than that.
const relTolerance = 1e-6

// diffAnswers returns "" when got equals the reference answer (same series by their full label
// sets, same timestamps, values within relTolerance, NaN equal to NaN), else the first difference.
func diffAnswers(ref, got answer) string {
	switch {
	case ref.err != "" && got.err != "":
		return "" // both refused: nothing to compare (the table shows the errors)
	case ref.err != "":
		return "the reference failed: " + ref.err
	case got.err != "":
		return "failed: " + got.err
	}
	r, g := byLabels(ref.matrix), byLabels(got.matrix)
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		gs, ok := g[k]
		if !ok {
			d := fmt.Sprintf("%d series, reference %d; series %s missing", len(g), len(r), r[k].Metric)
			// Usually a label differs (a metric name kept, say): show what came instead, the
			// series with the same labels but the name if there is one.
			var unmatched *model.SampleStream
			for gk, other := range g {
				if _, ok := r[gk]; ok {
					continue
				}
				if unmatched == nil || withoutName(other.Metric).Equal(withoutName(r[k].Metric)) {
					unmatched = other
				}
			}
			if unmatched != nil {
				d += fmt.Sprintf(", unmatched %s", unmatched.Metric)
			}
			return d
		}
		if d := diffSeries(r[k], gs); d != "" {
			return fmt.Sprintf("series %s: %s", r[k].Metric, d)
		}
	}
	for k, gs := range g {
		if _, ok := r[k]; !ok {
			return fmt.Sprintf("%d series, reference %d; extra series %s", len(g), len(r), gs.Metric)
		}
	}
	return ""
}

func withoutName(m model.Metric) model.Metric {
	c := m.Clone()
	delete(c, model.MetricNameLabel)
	return c
}

func byLabels(m model.Matrix) map[string]*model.SampleStream {
	out := make(map[string]*model.SampleStream, len(m))
	for _, s := range m {
		names := make([]string, 0, len(s.Metric))
		for n := range s.Metric {
			names = append(names, string(n))
		}
		slices.Sort(names)
		var b strings.Builder
		for _, n := range names {
			b.WriteString(n)
			b.WriteByte(0)
			b.WriteString(string(s.Metric[model.LabelName(n)]))
			b.WriteByte(0)
		}
		out[b.String()] = s
	}
	return out
}

func diffSeries(ref, got *model.SampleStream) string {
	if len(ref.Histograms) != 0 || len(got.Histograms) != 0 {
		return "histogram samples (not compared)"
	}
	for i := range max(len(ref.Values), len(got.Values)) {
		switch {
		case i >= len(ref.Values):
			return fmt.Sprintf("%d samples, reference %d; extra %s", len(got.Values), len(ref.Values), got.Values[i])
		case i >= len(got.Values):
			return fmt.Sprintf("%d samples, reference %d; missing %s", len(got.Values), len(ref.Values), ref.Values[i])
		}
		r, g := ref.Values[i], got.Values[i]
		if r.Timestamp != g.Timestamp || !closeEnough(float64(r.Value), float64(g.Value)) {
			return fmt.Sprintf("sample %d: reference %s, got %s", i, r, g)
		}
	}
	return ""
}

func closeEnough(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b:
		return true
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return false
	}
	return math.Abs(a-b) <= relTolerance*math.Max(math.Abs(a), math.Abs(b))
}

func median(d []time.Duration) time.Duration {
	return time.Duration(medianOf(d, func(x time.Duration) float64 { return float64(x) }))
}

// medianOf is the median of f over runs (of an even count, the mean of the two middle values);
// 0 for none.
func medianOf[T any](runs []T, f func(T) float64) float64 {
	if len(runs) == 0 {
		return 0
	}
	vs := make([]float64, len(runs))
	for i, r := range runs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2]
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
}
