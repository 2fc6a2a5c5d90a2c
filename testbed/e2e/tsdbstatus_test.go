package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
)

// tsdbHead is the part of /api/v1/status/tsdb the test reads, in Prometheus's field names.
type tsdbHead struct {
	HeadStats struct {
		NumSeries  uint64 `json:"numSeries"`
		ChunkCount int64  `json:"chunkCount"`
	} `json:"headStats"`
	SeriesCountByMetricName []struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	} `json:"seriesCountByMetricName"`
}

func getTSDBStatus(t *testing.T, ports harness.Ports) tsdbHead {
	t.Helper()
	resp, err := http.Get(ports.PromQLURL() + "/api/v1/status/tsdb?limit=1000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string   `json:"status"`
		Data   tsdbHead `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK || r.Status != "success" {
		t.Fatalf("/api/v1/status/tsdb: %d %q %v", resp.StatusCode, r.Status, err)
	}
	return r.Data
}

// TestTSDBStatus: /api/v1/status/tsdb through the binary counts the series pushed by a real
// remote write client, per metric name too; after kill -9 the series replayed from the sample
// log are counted again; after a clean restart the series written again are counted once
// (they are looked up on disk, not created anew).
func TestTSDBStatus(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	configPath := cfg.Write(t)
	proc := harness.StartReady(t, "metricstor (first run)", binary, configPath, cfg.Ports)

	const hosts, samples = 3, 5
	want := uint64(hosts * loadgen.SeriesPerHost)
	// push sends samples rounds of every series, 15 s apart, the last one at end.
	push := func(end time.Time) {
		t.Helper()
		gen, err := loadgen.New(loadgen.Config{URL: cfg.RemoteWriteURL(), Series: int(want), Samples: samples, Senders: 1, End: end})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gen.Run(context.Background(), 0, samples); err != nil {
			t.Fatal(err)
		}
	}
	check := func(t *testing.T) {
		t.Helper()
		st := getTSDBStatus(t, cfg.Ports)
		if st.HeadStats.NumSeries != want || st.HeadStats.ChunkCount != int64(want) {
			t.Errorf("numSeries %d, chunkCount %d; want the %d series pushed, one open chunk each", st.HeadStats.NumSeries, st.HeadStats.ChunkCount, want)
		}
		var total uint64
		for _, s := range st.SeriesCountByMetricName {
			total += s.Value
			if s.Name == "node_network_up" && s.Value != hosts*4 {
				t.Errorf("node_network_up: %d series, want %d", s.Value, hosts*4)
			}
		}
		if total != want || len(st.SeriesCountByMetricName) != len(loadgen.MetricNames()) {
			t.Errorf("%d metric names with %d series in all, want %d names, %d series", len(st.SeriesCountByMetricName), total, len(loadgen.MetricNames()), want)
		}
	}

	push(time.Now().Add(-3 * time.Minute))
	t.Run("pushed", check)

	proc.Kill()
	proc = harness.StartReady(t, "metricstor (after kill -9)", binary, configPath, cfg.Ports)
	t.Run("after_kill", check)

	proc.Stop(30 * time.Second)
	harness.StartReady(t, "metricstor (after SIGTERM)", binary, configPath, cfg.Ports)
	// A clean stop writes the heads out, so the new process holds no series in memory until they
	// are written again (README of queryext, /api/v1/status/tsdb).
	if n := getTSDBStatus(t, cfg.Ports).HeadStats.NumSeries; n != 0 {
		t.Logf("after SIGTERM, before new writes: %d head series", n)
	}
	push(time.Now())
	t.Run("after_sigterm_and_writes", check)
}
