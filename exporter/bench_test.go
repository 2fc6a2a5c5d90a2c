package exporter

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

// passthroughBatch is what the remote_write receiver makes of one request of the ingestion
// benchmark (receiver/bench_test.go): 2,000 node-exporter-like series of 20 hosts, one sample
// each at round r, grouped by resource and metric.
func passthroughBatch(r int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	for host := range 20 {
		rm := md.ResourceMetrics().AppendEmpty()
		rm.Resource().Attributes().PutStr(passthrough.JobAttribute, "node")
		rm.Resource().Attributes().PutStr(passthrough.InstanceAttribute, fmt.Sprintf("host-%05d:9100", host))
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(passthrough.ScopeName)
		ms := sm.Metrics()
		add := func(name string, counter bool, attrs ...string) {
			var m pmetric.Metric
			if ms.Len() > 0 && ms.At(ms.Len()-1).Name() == name {
				m = ms.At(ms.Len() - 1)
			} else {
				m = ms.AppendEmpty()
				m.SetName(name)
				typ := "gauge"
				if counter {
					typ = "counter"
					m.SetEmptySum().SetIsMonotonic(true)
				} else {
					m.SetEmptyGauge()
				}
				m.Metadata().PutStr(passthrough.KeyType, typ)
			}
			var dps pmetric.NumberDataPointSlice
			if counter {
				dps = m.Sum().DataPoints()
			} else {
				dps = m.Gauge().DataPoints()
			}
			dp := dps.AppendEmpty()
			dp.SetTimestamp(ts(t0 + r*15_000))
			dp.SetDoubleValue(float64(r))
			for i := 0; i+1 < len(attrs); i += 2 {
				dp.Attributes().PutStr(attrs[i], attrs[i+1])
			}
		}
		for cpu := range 8 {
			for _, mode := range []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"} {
				add("node_cpu_seconds_total", true, "cpu", fmt.Sprint(cpu), "mode", mode)
			}
		}
		for _, dev := range []string{"eth0", "eth1", "lo", "sda", "sdb", "nvme0n1", "nvme1n1", "dm-0", "dm-1", "dm-2", "dm-3", "md0"} {
			add("node_network_receive_bytes_total", true, "device", dev)
			add("node_network_transmit_bytes_total", true, "device", dev)
		}
		for chip := range 3 {
			for sensor := range 4 {
				add("node_hwmon_temp_celsius", false, "chip", fmt.Sprintf("platform_coretemp_%d", chip), "sensor", fmt.Sprintf("temp%d", sensor+1))
			}
		}
	}
	return md
}

// nopAppender accepts everything and gives every label set the same ref: what the exporter
// costs without a store.
type nopAppender struct{}

func (nopAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	return 1, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }

// startStore starts the metricstor storage extension on a temporary directory.
func startStore(b *testing.B) storage.Store {
	ctx := context.Background()
	sf := storage.NewFactory()
	cfg := sf.CreateDefaultConfig()
	if err := confmap.NewFromStringMap(map[string]any{"directory": b.TempDir()}).Unmarshal(cfg); err != nil {
		b.Fatal(err)
	}
	id := component.MustNewID("metricstor")
	ext, err := sf.Create(ctx, extension.Settings{ID: id, TelemetrySettings: componenttest.NewNopTelemetrySettings()}, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := ext.Start(ctx, testHost{exts: map[component.ID]component.Component{id: ext}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ext.Shutdown(ctx) })
	return ext.(storage.Store)
}

// BenchmarkWriteRemoteWrite measures writing the receiver's data of one 2,000-series request
// whose series are all known (the steady state), per sample: the exporter alone (nop: an
// appender that does nothing) and into the metricstor store (append and commit), with the series
// cache and without it (every point builds its labels, owned, and the store looks them up).
// cpu-ns/sample is the process's CPU time per sample while writing (garbage collection and the
// store's background work included, building the batches not): the machines are shared, so
// wall-clock ns/op means little.
func BenchmarkWriteRemoteWrite(b *testing.B) {
	samples := passthroughBatch(0).DataPointCount()
	for _, target := range []string{"nop", "store"} {
		for _, cached := range []bool{true, false} {
			name := target + "/cache"
			if !cached {
				name = target + "/nocache"
			}
			b.Run(name, func(b *testing.B) {
				exp, err := newMetricstorExporter(createDefaultConfig().(*Config), componenttest.NewNopTelemetrySettings())
				if err != nil {
					b.Fatal(err)
				}
				cache := exp.series
				if !cached {
					cache = nil
				}
				var store storage.Store
				if target == "store" {
					store = startStore(b)
				}
				ctx := context.Background()
				st := exp.pool.Get().(*pushState)
				write := func(md pmetric.Metrics) {
					var app promstorage.AppenderV2 = nopAppender{}
					if store != nil {
						app = store.AppenderV2(ctx)
					}
					st.app.reset(app)
					fatal, invalid := writeRemoteWrite(ctx, md, &st.app, cache, st)
					if fatal != nil || invalid != nil || st.app.totalRejected() > 0 {
						b.Fatal(fatal, invalid, st.app.firstRejected)
					}
					if err := app.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				write(passthroughBatch(0)) // the series exist
				b.ReportAllocs()
				n := 0
				var cpu time.Duration
				for i := 1; b.Loop(); i++ {
					b.StopTimer()
					md := passthroughBatch(int64(i))
					b.StartTimer()
					before := processCPU(b)
					write(md)
					cpu += processCPU(b) - before
					n += samples
				}
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/sample")
			})
		}
	}
}

// processCPU is the user and system CPU time of the process so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
