package loadgen

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/prompb"
)

// SeriesPerHost is the number of series of one simulated host: a node-exporter-like mix of
// counters and gauges, each with one or two labels besides __name__, job and instance.
const SeriesPerHost = 100

// Job is the value of the job label of every series the generator sends.
const Job = "loadgen"

// seriesTemplate is one series of a host: its metric name, its extra labels and its kind.
type seriesTemplate struct {
	name    string
	labels  []string // name, value, ...
	counter bool
	kind    valueKind
}

type valueKind int

const (
	kindCPUSeconds  valueKind = iota // counter, decimal (2 decimals), grows by ~0.01-15 per 15 s
	kindBytes                        // counter, integer, grows by up to ~1 MB per 15 s
	kindOps                          // counter, integer, grows by a few per 15 s
	kindFSBytes                      // gauge, integer (multiples of 4096), drifts slowly
	kindTemperature                  // gauge, decimal (2 decimals), wanders around 40-70
	kindSmallGauge                   // gauge, small integers (0-3)
	kindConstant                     // gauge, constant (MTU, up)
)

// hostTemplates is the 100 series of one host, in a fixed order.
var hostTemplates = buildTemplates()

func buildTemplates() []seriesTemplate {
	var out []seriesTemplate
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	for cpu := 0; cpu < 4; cpu++ {
		for _, mode := range modes {
			out = append(out, seriesTemplate{"node_cpu_seconds_total", []string{"cpu", fmt.Sprint(cpu), "mode", mode}, true, kindCPUSeconds})
		}
	}
	netDevices := []string{"eth0", "eth1", "lo", "docker0"}
	for _, m := range []struct {
		name string
		kind valueKind
	}{
		{"node_network_receive_bytes_total", kindBytes}, {"node_network_transmit_bytes_total", kindBytes},
		{"node_network_receive_packets_total", kindOps}, {"node_network_transmit_packets_total", kindOps},
	} {
		for _, dev := range netDevices {
			out = append(out, seriesTemplate{m.name, []string{"device", dev}, true, m.kind})
		}
	}
	diskDevices := []string{"nvme0n1", "nvme1n1", "sda", "sdb"}
	for _, m := range []struct {
		name string
		kind valueKind
	}{
		{"node_disk_read_bytes_total", kindBytes}, {"node_disk_written_bytes_total", kindBytes},
		{"node_disk_reads_completed_total", kindOps}, {"node_disk_writes_completed_total", kindOps},
	} {
		for _, dev := range diskDevices {
			out = append(out, seriesTemplate{m.name, []string{"device", dev}, true, m.kind})
		}
	}
	mounts := [][2]string{{"/dev/nvme0n1p1", "/"}, {"/dev/nvme0n1p2", "/boot"}, {"/dev/nvme1n1", "/var/lib/data"}, {"tmpfs", "/run"}}
	for _, name := range []string{"node_filesystem_avail_bytes", "node_filesystem_free_bytes", "node_filesystem_size_bytes"} {
		for _, m := range mounts {
			out = append(out, seriesTemplate{name, []string{"device", m[0], "mountpoint", m[1]}, false, kindFSBytes})
		}
	}
	for chip := 0; chip < 2; chip++ {
		for sensor := 1; sensor <= 4; sensor++ {
			out = append(out, seriesTemplate{"node_hwmon_temp_celsius", []string{"chip", fmt.Sprintf("platform_coretemp_%d", chip), "sensor", fmt.Sprintf("temp%d", sensor)}, false, kindTemperature})
		}
	}
	for zone := 0; zone < 4; zone++ {
		out = append(out, seriesTemplate{"node_thermal_zone_temp", []string{"type", "x86_pkg_temp", "zone", fmt.Sprint(zone)}, false, kindTemperature})
	}
	for _, dev := range diskDevices {
		out = append(out, seriesTemplate{"node_disk_io_now", []string{"device", dev}, false, kindSmallGauge})
	}
	for _, dev := range netDevices {
		out = append(out, seriesTemplate{"node_network_mtu_bytes", []string{"device", dev}, false, kindConstant})
	}
	for _, dev := range netDevices {
		out = append(out, seriesTemplate{"node_network_up", []string{"device", dev}, false, kindConstant})
	}
	if len(out) != SeriesPerHost {
		panic(fmt.Sprintf("loadgen: %d series per host, want %d", len(out), SeriesPerHost))
	}
	return out
}

// Labels returns the label set of series id (0-based), sorted by name as remote write requires:
// __name__, the template's labels, instance, job. Series id belongs to host id/SeriesPerHost.
func Labels(id int) []prompb.Label {
	tpl := hostTemplates[id%SeriesPerHost]
	out := make([]prompb.Label, 0, 3+len(tpl.labels)/2)
	out = append(out, prompb.Label{Name: "__name__", Value: tpl.name})
	for i := 0; i < len(tpl.labels); i += 2 {
		out = append(out, prompb.Label{Name: tpl.labels[i], Value: tpl.labels[i+1]})
	}
	out = append(out,
		prompb.Label{Name: "instance", Value: fmt.Sprintf("host-%05d:9100", id/SeriesPerHost)},
		prompb.Label{Name: "job", Value: Job})
	sortLabels(out)
	return out
}

func sortLabels(ls []prompb.Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// MetricNames returns the distinct metric names, in template order.
func MetricNames() []string {
	var out []string
	for _, md := range Metadata() {
		out = append(out, md.MetricFamilyName)
	}
	return out
}

// Metadata returns the metric metadata of every family, as Prometheus sends it (in requests of
// its own) with remote write 1.0.
func Metadata() []prompb.MetricMetadata {
	seen := map[string]bool{}
	var out []prompb.MetricMetadata
	for _, tpl := range hostTemplates {
		if seen[tpl.name] {
			continue
		}
		seen[tpl.name] = true
		typ := prompb.MetricMetadata_GAUGE
		if tpl.counter {
			typ = prompb.MetricMetadata_COUNTER
		}
		out = append(out, prompb.MetricMetadata{Type: typ, MetricFamilyName: tpl.name, Help: tpl.name + " of the simulated host."})
	}
	return out
}

// mix is a cheap deterministic hash of (id, round, salt) to [0, 1).
func mix(id int, round int, salt uint64) float64 {
	x := uint64(id)*0x9E3779B97F4A7C15 ^ uint64(round)*0xC2B2AE3D27D4EB4F ^ salt*0x165667B19E3779F9
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb93e5e9ab1c1
	x ^= x >> 33
	return float64(x>>11) / (1 << 53)
}

// Value returns the value of series id in round r. Counters are cumulative (computed in closed
// form so that any round can be generated without the previous ones), gauges are computed
// directly. Decimal kinds have two decimals.
func Value(id, r int) float64 {
	tpl := hostTemplates[id%SeriesPerHost]
	start := mix(id, 0, 1)
	switch tpl.kind {
	case kindCPUSeconds:
		// A per-series rate of 0.01-15 s per 15 s, a small per-round jitter that never makes it
		// decrease.
		rate := 0.01 + 15*start*start
		v := 1e5*start + rate*float64(r) + 0.5*mix(id, r, 2)*rate
		return math.Round(v*100) / 100
	case kindBytes:
		rate := math.Floor(1e6 * start)
		return math.Floor(1e9*start) + rate*float64(r) + math.Floor(0.5*rate*mix(id, r, 3))
	case kindOps:
		rate := math.Floor(1 + 200*start)
		return math.Floor(1e6*start) + rate*float64(r) + math.Floor(0.5*rate*mix(id, r, 4))
	case kindFSBytes:
		size := math.Floor(1e12*start/4096) * 4096
		if tpl.name == "node_filesystem_size_bytes" {
			return size
		}
		used := math.Floor((0.3+0.2*mix(id, r/20, 5))*size/4096) * 4096
		return size - used
	case kindTemperature:
		v := 40 + 20*start + 5*math.Sin(float64(r)/10+start*6) + mix(id, r, 6)
		return math.Round(v*100) / 100
	case kindSmallGauge:
		return math.Floor(4 * mix(id, r, 7))
	default: // kindConstant
		if tpl.name == "node_network_mtu_bytes" {
			return 1500
		}
		return 1
	}
}
