package scrape

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// A target serves one static exposition, which the test may replace (a series disappears) or
// turn off (the target answers 503: it is down). Both servers scrape the same target, so both
// see the same values.
type target struct {
	contentType string
	body        atomic.Pointer[string]
	down        atomic.Bool
	srv         *httptest.Server
}

func newTarget(t *testing.T, contentType, body string) *target {
	t.Helper()
	tg := &target{contentType: contentType}
	tg.body.Store(&body)
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if tg.down.Load() {
			http.Error(w, "target is down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", tg.contentType)
		_, _ = w.Write([]byte(*tg.body.Load()))
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

// addr is host:port of the target, as a static_configs target.
func (tg *target) addr() string { return tg.srv.Listener.Addr().String() }

func (tg *target) set(body string) { tg.body.Store(&body) }

const textFormat = "text/plain; version=0.0.4; charset=utf-8"

// utf8TextFormat is the text format with UTF-8 names (quoted label names).
const utf8TextFormat = "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"

const openMetricsFormat = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// appMetrics is an application's /metrics in the text format: a counter, a gauge, a classic
// histogram, a summary, an info-style gauge, an untyped metric, and a metric the scrape
// config's metric_relabel_configs drop.
const appMetrics = `# HELP app_requests_total Requests handled.
# TYPE app_requests_total counter
app_requests_total{code="200",method="get"} 1027
app_requests_total{code="500",method="post"} 3
# HELP app_temperature_celsius Current temperature.
# TYPE app_temperature_celsius gauge
app_temperature_celsius{room="a"} 21.5
app_temperature_celsius{room="b"} -3.25
# HELP app_latency_seconds Request latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 10
app_latency_seconds_bucket{le="0.5"} 25
app_latency_seconds_bucket{le="1"} 30
app_latency_seconds_bucket{le="+Inf"} 31
app_latency_seconds_sum 12.5
app_latency_seconds_count 31
# HELP app_rpc_duration_seconds RPC duration.
# TYPE app_rpc_duration_seconds summary
app_rpc_duration_seconds{quantile="0.5"} 0.05
app_rpc_duration_seconds{quantile="0.99"} 0.2
app_rpc_duration_seconds_sum 100.5
app_rpc_duration_seconds_count 1000
# HELP app_build_info Build information.
# TYPE app_build_info gauge
app_build_info{goversion="go1.26",version="1.2.3"} 1
app_untyped_thing 42
# HELP app_dropped_total Dropped by metric relabeling.
# TYPE app_dropped_total counter
app_dropped_total 7
`

// appMetricsLater is appMetrics after one request series and the temperature of room b went
// away: both must get staleness markers.
const appMetricsLater = `# HELP app_requests_total Requests handled.
# TYPE app_requests_total counter
app_requests_total{code="200",method="get"} 1027
# HELP app_temperature_celsius Current temperature.
# TYPE app_temperature_celsius gauge
app_temperature_celsius{room="a"} 21.5
# HELP app_latency_seconds Request latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="0.1"} 10
app_latency_seconds_bucket{le="0.5"} 25
app_latency_seconds_bucket{le="1"} 30
app_latency_seconds_bucket{le="+Inf"} 31
app_latency_seconds_sum 12.5
app_latency_seconds_count 31
# HELP app_rpc_duration_seconds RPC duration.
# TYPE app_rpc_duration_seconds summary
app_rpc_duration_seconds{quantile="0.5"} 0.05
app_rpc_duration_seconds{quantile="0.99"} 0.2
app_rpc_duration_seconds_sum 100.5
app_rpc_duration_seconds_count 1000
# HELP app_build_info Build information.
# TYPE app_build_info gauge
app_build_info{goversion="go1.26",version="1.2.3"} 1
app_untyped_thing 42
`

// nodeMetrics is a node_exporter-style target.
const nodeMetrics = `# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 12345.67
node_cpu_seconds_total{cpu="0",mode="user"} 234.5
node_cpu_seconds_total{cpu="1",mode="idle"} 12001.25
node_cpu_seconds_total{cpu="1",mode="user"} 301
# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 8.123456e+09
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1.2e+10
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.42
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{machine="x86_64",nodename="host1",release="6.1.0",sysname="Linux"} 1
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
`

// openMetrics is a target in the OpenMetrics text format: a counter with a unit, an info
// metric and a stateset.
const openMetrics = `# TYPE om_sent_bytes counter
# UNIT om_sent_bytes bytes
# HELP om_sent_bytes Bytes sent.
om_sent_bytes_total 4096
# TYPE om_build info
# HELP om_build Build information.
om_build_info{version="2.0.1"} 1
# TYPE om_feature stateset
# HELP om_feature Enabled features.
om_feature{om_feature="a"} 1
om_feature{om_feature="b"} 0
# TYPE om_queue_length gauge
# HELP om_queue_length Items queued.
om_queue_length 5
# EOF
`

// otelAppMetrics is an application instrumented with an OpenTelemetry SDK: it exposes
// target_info with its resource attributes, named in UTF-8 as the SDK's Prometheus exporter
// does when the scraper accepts it (Prometheus 3 and the receiver both send
// escaping=allow-utf-8).
const otelAppMetrics = `# HELP target_info Target metadata
# TYPE target_info gauge
target_info{"service.instance.id"="shop-1","service.name"="shop","service.version"="1.0"} 1
# HELP shop_orders_total Orders placed.
# TYPE shop_orders_total counter
shop_orders_total 17
`

// protoMetrics is a target in the protobuf format (the only one that carries native histograms
// in Prometheus 3.16): a native histogram with negative, zero and positive buckets, a counter
// and a gauge. Encoded once, as length-delimited io.prometheus.client.MetricFamily messages.
func protoMetrics(t *testing.T) (contentType, body string) {
	t.Helper()
	families := []*dto.MetricFamily{
		{
			Name: proto.String("rpc_latency_seconds"),
			Help: proto.String("RPC latency."),
			Type: dto.MetricType_HISTOGRAM.Enum(),
			Metric: []*dto.Metric{{
				Label: []*dto.LabelPair{{Name: proto.String("service"), Value: proto.String("cart")}},
				Histogram: &dto.Histogram{
					SampleCount:   proto.Uint64(23), // zero 2 + negative 1 + positive 20
					SampleSum:     proto.Float64(7.25),
					Schema:        proto.Int32(1),
					ZeroThreshold: proto.Float64(0.001),
					ZeroCount:     proto.Uint64(2),
					PositiveSpan:  []*dto.BucketSpan{{Offset: proto.Int32(-2), Length: proto.Uint32(3)}, {Offset: proto.Int32(2), Length: proto.Uint32(1)}},
					PositiveDelta: []int64{3, 2, -1, 4}, // counts 3, 5, 4, 8
					NegativeSpan:  []*dto.BucketSpan{{Offset: proto.Int32(0), Length: proto.Uint32(1)}},
					NegativeDelta: []int64{1},
				},
			}},
		},
		{
			Name: proto.String("rpc_calls_total"),
			Help: proto.String("RPC calls."),
			Type: dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{
				Label:   []*dto.LabelPair{{Name: proto.String("service"), Value: proto.String("cart")}},
				Counter: &dto.Counter{Value: proto.Float64(20)},
			}},
		},
		{
			Name:   proto.String("rpc_inflight"),
			Help:   proto.String("RPCs in flight."),
			Type:   dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(3)}}},
		},
	}
	format := expfmt.NewFormat(expfmt.TypeProtoDelim)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			t.Fatalf("encode %s: %v", mf.GetName(), err)
		}
	}
	return string(format), buf.String()
}
