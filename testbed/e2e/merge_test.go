package e2e

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
)

// TestMergedChunksReadBack backfills six hours of node-exporter-like series through remote
// write, oldest first, waits until the store has merged the chunks of the windows its heads
// left behind (its telemetry counts them), and reads every sample back through the query API,
// bit for bit: once merged, after kill -9 (whose replay ends in a checkpoint that stores the
// heads' XOR2 bytes as they are), and after a clean restart (whose stop packs them). The answer,
// 57,600 points, is also one that the API JSON-encodes in parts on all CPUs (queryext/codec.go).
func TestMergedChunksReadBack(t *testing.T) {
	const series, samples = 40, 6 * 3600 / 15
	cfg, c, gen := startLoaded(t, "metricstor (merging chunks)", series, samples)
	defer c.Stop(time.Minute)
	end := time.UnixMilli(gen.Timestamp(samples - 1))
	// Six hours hold at least two whole 2 h windows behind every head, each of four chunks of
	// 120 samples merged into one: three chunks merged away per window and series.
	const atLeast = series * 2 * 3
	deadline := time.Now().Add(time.Minute)
	merged := 0.0
	for merged = telemetryGauge(t, cfg.Ports, "metricstor_storage_chunks_merged"); merged < atLeast; merged = telemetryGauge(t, cfg.Ports, "metricstor_storage_chunks_merged") {
		if time.Now().After(deadline) {
			t.Fatalf("metricstor_storage_chunks_merged = %v after a minute, want at least %d", merged, atLeast)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("chunks merged away: %v", merged)

	ids := map[string]int{}
	for id := range series {
		m := model.Metric{}
		for _, l := range loadgen.Labels(id) {
			m[model.LabelName(l.Name)] = model.LabelValue(l.Value)
		}
		ids[m.String()] = id
	}
	readBack := func(t *testing.T) {
		t.Helper()
		// A range selector returns the raw samples: all of them, as sent.
		v, _, _, err := newAPI(t, cfg.Ports).Query(queryCtx(t), `{job="loadgen"}[6h]`, end)
		if err != nil {
			t.Fatal(apiError(err))
		}
		matrix, ok := v.(model.Matrix)
		if !ok || len(matrix) != series {
			t.Fatalf("got %d series (%T), want %d", len(matrix), v, series)
		}
		for _, s := range matrix {
			id, ok := ids[s.Metric.String()]
			if !ok {
				t.Fatalf("a series the load generator did not send: %s", s.Metric)
			}
			if len(s.Values) != samples {
				t.Fatalf("%s: %d samples, want %d", s.Metric, len(s.Values), samples)
			}
			for r, p := range s.Values {
				want := loadgen.Value(id, r)
				if int64(p.Timestamp) != gen.Timestamp(r) || math.Float64bits(float64(p.Value)) != math.Float64bits(want) {
					t.Fatalf("%s sample %d: got %v @ %d, want %v @ %d", s.Metric, r, p.Value, p.Timestamp, want, gen.Timestamp(r))
				}
			}
		}
	}
	t.Run("merged", readBack)
	c.Kill()
	c.Start()
	t.Run("after_kill", readBack)
	c.Stop(time.Minute)
	c.Start()
	t.Run("after_restart", readBack)
}

// startLoaded starts the binary with the remote write receiver and backfills series × samples
// of the load generator, 15 s apart, oldest first, the last a minute ago. The caller stops it.
func startLoaded(t *testing.T, name string, series, samples int) (harness.Config, *harness.Collector, *loadgen.Generator) {
	t.Helper()
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	c := harness.NewCollector(t, name, harness.Binary(t), cfg)
	c.Start()
	end := time.Now().Add(-time.Minute).Truncate(time.Second)
	gen, err := loadgen.New(loadgen.Config{URL: cfg.RemoteWriteURL(), Series: series, Samples: samples, Senders: 2, End: end})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(context.Background(), 0, samples); err != nil {
		t.Fatal(err)
	}
	return cfg, c, gen
}
