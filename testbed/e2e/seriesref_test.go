package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestSeriesBackAfterHeadCollection: the exporter appends a series it has seen by the store's ref
// alone. When the store has dropped that series from memory since (head collection, after it
// idled past an hour of sample time), the store answers that it no longer knows the ref and the
// exporter appends the sample again with the series' labels. Through the binary: a series is
// written twice (the second time by its ref), other series move the store's time three hours on,
// head collection (every minute) drops the first series, and its next sample is still stored,
// under the same series, after a restart too.
func TestSeriesBackAfterHeadCollection(t *testing.T) {
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	proc := harness.StartReady(t, "metricstor (head collection)", binary, configPath, ports)
	waitListening(t, proc, url)

	now := time.Now().Truncate(time.Second)
	t0 := now.Add(-3 * time.Hour).UnixMilli()
	push := func(name string, ts int64, v float64) {
		t.Helper()
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: name}, {Name: "instance", Value: "host:9100"}, {Name: "job", Value: "refs"}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
		}}}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rwPost(t, url, "application/x-protobuf;proto=prometheus.WriteRequest", b)
	}
	push("idle_series", t0, 1)
	push("idle_series", t0+15_000, 2) // a cached series: appended by its ref
	push("busy_series", now.UnixMilli(), 1)
	waitFor(t, "head collection to drop idle_series (head series 2 -> 1)", func() bool {
		return telemetryGauge(t, ports, "metricstor_storage_head_series") == 1
	})
	push("idle_series", t0+30_000, 3) // the exporter's ref is no longer in memory

	check := func(t *testing.T) {
		t.Helper()
		q := `idle_series{job="refs"}[1m]`
		res, _, _, err := newAPI(t, ports).Query(queryCtx(t), q, time.UnixMilli(t0+30_000))
		if err != nil {
			t.Fatalf("%s: %s", q, apiError(err))
		}
		m, ok := res.(model.Matrix)
		if !ok || len(m) != 1 {
			t.Fatalf("%s: %v, want one series", q, res)
		}
		got := fmt.Sprint(m[0].Values)
		want := fmt.Sprint([]model.SamplePair{{Timestamp: model.Time(t0), Value: 1}, {Timestamp: model.Time(t0 + 15_000), Value: 2}, {Timestamp: model.Time(t0 + 30_000), Value: 3}})
		if got != want {
			t.Fatalf("%s: %s, want %s", q, got, want)
		}
	}
	t.Run("in_memory", check)
	if n := telemetryGauge(t, ports, "metricstor_storage_head_series"); n != 2 {
		t.Errorf("head series %v, want 2: idle_series is back in memory", n)
	}
	proc.Stop(30 * time.Second)
	proc = harness.StartReady(t, "metricstor (head collection, after SIGTERM)", binary, configPath, ports)
	waitListening(t, proc, url)
	t.Run("after_sigterm", check)
}
