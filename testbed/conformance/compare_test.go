package conformance

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/config"
)

func stream(metric model.Metric, values ...float64) *model.SampleStream {
	s := &model.SampleStream{Metric: metric}
	for i, v := range values {
		s.Values = append(s.Values, model.SamplePair{Timestamp: model.Time(1000 * i), Value: model.SampleValue(v)})
	}
	return s
}

func TestDiff(t *testing.T) {
	a := model.Metric{"__name__": "m", "instance": "a"}
	b := model.Metric{"__name__": "m", "instance": "b"}
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		ref, got model.Value
		want     string // "" for equal, else a substring of the difference
	}{
		{"equal", model.Matrix{stream(a, 1, 2)}, model.Matrix{stream(a, 1, 2)}, ""},
		{"order does not matter", model.Matrix{stream(a, 1), stream(b, 2)}, model.Matrix{stream(b, 2), stream(a, 1)}, ""},
		{"within tolerance", model.Matrix{stream(a, 1e9)}, model.Matrix{stream(a, 1e9+9e3)}, ""},
		{"beyond tolerance", model.Matrix{stream(a, 1e9)}, model.Matrix{stream(a, 1e9+2e4)}, "sample 0"},
		{"NaN equals NaN", model.Matrix{stream(a, nan)}, model.Matrix{stream(a, nan)}, ""},
		{"NaN differs from a number", model.Matrix{stream(a, nan)}, model.Matrix{stream(a, 0)}, "sample 0"},
		{"infinities", model.Matrix{stream(a, math.Inf(1))}, model.Matrix{stream(a, math.Inf(1))}, ""},
		{"opposite infinities", model.Matrix{stream(a, math.Inf(1))}, model.Matrix{stream(a, math.Inf(-1))}, "sample 0"},
		{"zero against tiny", model.Matrix{stream(a, 0)}, model.Matrix{stream(a, 1e-300)}, "sample 0"},
		{"missing series", model.Matrix{stream(a, 1), stream(b, 1)}, model.Matrix{stream(a, 1)}, `instance="b"`},
		{"extra series", model.Matrix{stream(a, 1)}, model.Matrix{stream(a, 1), stream(b, 1)}, "only in the system under test"},
		{"label value differs", model.Matrix{stream(a, 1)}, model.Matrix{stream(b, 1)}, "only in the reference"},
		{"missing sample", model.Matrix{stream(a, 1, 2)}, model.Matrix{stream(a, 1)}, "missing sample"},
		{"extra sample", model.Matrix{stream(a, 1)}, model.Matrix{stream(a, 1, 2)}, "extra sample"},
		{"scalar", &model.Scalar{Value: 1}, &model.Scalar{Value: 2}, "scalar"},
		{"type", model.Matrix{}, &model.Scalar{}, "result type"},
		{"both empty", model.Matrix{}, model.Matrix{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(tc.ref, tc.got)
			switch {
			case tc.want == "" && got != "":
				t.Errorf("want equal, got difference %q", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("want a difference containing %q, got %q", tc.want, got)
			}
		})
	}
}

func TestDiffHistograms(t *testing.T) {
	h := func(count float64) *model.SampleStream {
		return &model.SampleStream{Metric: model.Metric{"__name__": "h"}, Histograms: []model.SampleHistogramPair{{
			Timestamp: 1000,
			Histogram: &model.SampleHistogram{Count: model.FloatString(count), Sum: 3, Buckets: model.HistogramBuckets{
				{Boundaries: 0, Lower: 1, Upper: 2, Count: model.FloatString(count)},
			}},
		}}}
	}
	if d := Diff(model.Matrix{h(2)}, model.Matrix{h(2)}); d != "" {
		t.Errorf("equal histograms differ: %s", d)
	}
	if d := Diff(model.Matrix{h(2)}, model.Matrix{h(3)}); !strings.Contains(d, "histogram sample 0") {
		t.Errorf("different histograms: got %q", d)
	}
}

func TestScrapeConfig(t *testing.T) {
	got := ScrapeConfig(5e9, []string{"127.0.0.1:1", "127.0.0.1:2"},
		RemoteWrite{Name: "rw1.0", URL: "http://127.0.0.1:3/api/v1/write", Message: MessageV1},
		RemoteWrite{Name: "rw2.0", URL: "http://127.0.0.1:4/api/v1/write", Message: MessageV2})
	for _, want := range []string{
		"scrape_interval: 5s",
		"job_name: demo",
		`targets: ["127.0.0.1:2"]`,
		`instance: "demo.promlabs.com:10001"`,
		`url: "http://127.0.0.1:3/api/v1/write"`,
		`url: "http://127.0.0.1:4/api/v1/write"`,
		`name: "rw2.0"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	// Only the second destination sends 2.0, and only the first has 1.0 metadata requests.
	if n := strings.Count(got, "protobuf_message: io.prometheus.write.v2.Request"); n != 1 {
		t.Errorf("protobuf_message %d times, want once:\n%s", n, got)
	}
	_, second, _ := strings.Cut(got, `url: "http://127.0.0.1:4`)
	if !strings.Contains(second, "protobuf_message") || strings.Contains(second, "metadata_config") {
		t.Errorf("the 2.0 destination is not configured as such:\n%s", got)
	}
	// The configuration must be one the reference accepts, with 1.0 then 2.0.
	cfg, err := config.Load(got, promslog.NewNopLogger())
	if err != nil {
		t.Fatalf("the reference would not load it: %v\n%s", err, got)
	}
	if len(cfg.RemoteWriteConfigs) != 2 || string(cfg.RemoteWriteConfigs[0].ProtobufMessage) != MessageV1 ||
		string(cfg.RemoteWriteConfigs[1].ProtobufMessage) != MessageV2 {
		t.Errorf("remote_write: want 1.0 then 2.0:\n%s", got)
	}

}
