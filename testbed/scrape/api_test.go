package scrape

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

var apiClient = &http.Client{Timeout: 30 * time.Second}

// get calls a Prometheus HTTP API endpoint and decodes its data into out.
func get(base, path string, params url.Values, out any) error {
	u := base + path + "?" + params.Encode()
	resp, err := apiClient.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %s: %v (body %.200q)", u, resp.Status, err, body)
	}
	if resp.StatusCode != http.StatusOK || env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// instant runs an instant query at now and returns the vector.
func instant(base, query string) (model.Vector, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := get(base, "/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %s, want vector", query, data.ResultType)
	}
	var v model.Vector
	return v, json.Unmarshal(data.Result, &v)
}

// metadataEntry is one entry of /api/v1/metadata.
type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

func (m metadataEntry) String() string {
	return fmt.Sprintf("{type=%q help=%q unit=%q}", m.Type, m.Help, m.Unit)
}

// snapshot is what one server answers about everything it scraped.
type snapshot struct {
	series   map[string]model.Metric    // /api/v1/series since the start, by canonical labels
	values   map[string]*model.Sample   // /api/v1/query {__name__=~".+"} at now
	metadata map[string][]metadataEntry // /api/v1/metadata, entries sorted
	// exemplars are /api/v1/query_exemplars {__name__=~".+"} since the start: by canonical
	// series labels, each exemplar as "labels value@timestamp", sorted.
	exemplars map[string][]string
}

func takeSnapshot(base string, since time.Time) (*snapshot, error) {
	s := &snapshot{series: map[string]model.Metric{}, values: map[string]*model.Sample{}}
	var series []model.Metric
	params := url.Values{"match[]": {`{__name__=~".+"}`}, "start": {strconv.FormatInt(since.Unix(), 10)}, "end": {strconv.FormatInt(time.Now().Unix()+1, 10)}}
	if err := get(base, "/api/v1/series", params, &series); err != nil {
		return nil, err
	}
	for _, m := range series {
		s.series[canonical(m)] = m
	}
	vec, err := instant(base, `{__name__=~".+"}`)
	if err != nil {
		return nil, err
	}
	for _, smp := range vec {
		s.values[canonical(smp.Metric)] = smp
	}
	if err := get(base, "/api/v1/metadata", url.Values{}, &s.metadata); err != nil {
		return nil, err
	}
	var exemplars []struct {
		SeriesLabels model.Metric `json:"seriesLabels"`
		Exemplars    []struct {
			Labels    model.Metric `json:"labels"`
			Value     string       `json:"value"`
			Timestamp float64      `json:"timestamp"`
		} `json:"exemplars"`
	}
	if err := get(base, "/api/v1/query_exemplars", url.Values{"query": {`{__name__=~".+"}`}, "start": params["start"], "end": params["end"]}, &exemplars); err != nil {
		return nil, err
	}
	s.exemplars = map[string][]string{}
	for _, se := range exemplars {
		k := canonical(se.SeriesLabels)
		for _, e := range se.Exemplars {
			s.exemplars[k] = append(s.exemplars[k], fmt.Sprintf("%s %s@%.3f", canonical(e.Labels), e.Value, e.Timestamp))
		}
		slices.Sort(s.exemplars[k])
	}
	for _, entries := range s.metadata {
		slices.SortFunc(entries, func(a, b metadataEntry) int { return strings.Compare(a.String(), b.String()) })
	}
	return s, nil
}

// canonical is a series' labels as one string, sorted by name.
func canonical(m model.Metric) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, string(n))
	}
	slices.Sort(names)
	var sb strings.Builder
	sb.WriteString("{")
	for i, n := range names {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s=%q", n, m[model.LabelName(n)])
	}
	sb.WriteString("}")
	return sb.String()
}

// difference is one way Metricstor's answer differs from the reference's.
type difference struct {
	kind   string // see the kind* constants
	metric string // the metric name (the family for metadata)
	detail string
}

const (
	kindSeriesMissing = "series only in prometheus"
	kindSeriesExtra   = "series only in metricstor"
	kindValueMissing  = "current value only in prometheus"
	kindValueExtra    = "current value only in metricstor"
	kindValue         = "different value"
	kindMetadata      = "different metadata"
	kindExemplars     = "different exemplars"
)

func (d difference) String() string { return fmt.Sprintf("%s: %s: %s", d.kind, d.metric, d.detail) }

// presenceOnly are the series whose value legitimately differs between two scrapers: the
// time one scrape took.
var presenceOnly = map[string]bool{"scrape_duration_seconds": true}

// compare lists every difference of got (Metricstor) from ref (Prometheus).
func compare(ref, got *snapshot) []difference {
	var diffs []difference
	for k, m := range ref.series {
		if _, ok := got.series[k]; !ok {
			diffs = append(diffs, difference{kindSeriesMissing, string(m[model.MetricNameLabel]), k})
		}
	}
	for k, m := range got.series {
		if _, ok := ref.series[k]; !ok {
			diffs = append(diffs, difference{kindSeriesExtra, string(m[model.MetricNameLabel]), k})
		}
	}
	for k, r := range ref.values {
		name := string(r.Metric[model.MetricNameLabel])
		g, ok := got.values[k]
		switch {
		case !ok:
			diffs = append(diffs, difference{kindValueMissing, name, k + " " + sampleValue(r)})
		case presenceOnly[name]:
		case !equalSample(r, g):
			diffs = append(diffs, difference{kindValue, name, fmt.Sprintf("%s: prometheus %s, metricstor %s", k, sampleValue(r), sampleValue(g))})
		}
	}
	for k, g := range got.values {
		if _, ok := ref.values[k]; !ok {
			diffs = append(diffs, difference{kindValueExtra, string(g.Metric[model.MetricNameLabel]), k + " " + sampleValue(g)})
		}
	}
	names := map[string]bool{}
	for n := range ref.metadata {
		names[n] = true
	}
	for n := range got.metadata {
		names[n] = true
	}
	for n := range names {
		r, g := ref.metadata[n], got.metadata[n]
		if !slices.Equal(r, g) {
			diffs = append(diffs, difference{kindMetadata, n, fmt.Sprintf("prometheus %v, metricstor %v", r, g)})
		}
	}
	exemplarSeries := map[string]bool{}
	for k := range ref.exemplars {
		exemplarSeries[k] = true
	}
	for k := range got.exemplars {
		exemplarSeries[k] = true
	}
	for k := range exemplarSeries {
		r, g := ref.exemplars[k], got.exemplars[k]
		if !slices.Equal(r, g) {
			diffs = append(diffs, difference{kindExemplars, k, fmt.Sprintf("prometheus %v, metricstor %v", r, g)})
		}
	}
	slices.SortFunc(diffs, func(a, b difference) int { return strings.Compare(a.String(), b.String()) })
	return diffs
}

func sampleValue(s *model.Sample) string {
	if s.Histogram != nil {
		return s.Histogram.String()
	}
	return s.Value.String()
}

func equalSample(a, b *model.Sample) bool {
	if (a.Histogram == nil) != (b.Histogram == nil) {
		return false
	}
	if a.Histogram != nil {
		return a.Histogram.Equal(b.Histogram)
	}
	x, y := float64(a.Value), float64(b.Value)
	return x == y || (math.IsNaN(x) && math.IsNaN(y))
}
