package demotarget

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Target is one instance of the demo service. Instances with the same seed and number expose the
// same values at the same second; different numbers give different (but equally deterministic)
// values, restart times and batch schedules.
type Target struct {
	Seed     uint64
	Instance int
}

// ServeHTTP writes the metrics at the current time in the Prometheus text format (0.0.4).
func (t Target) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = t.Write(w, time.Now())
}

// Write writes the metrics as of now (truncated to the second) in the Prometheus text format.
func (t Target) Write(w io.Writer, now time.Time) error {
	bw := bufio.NewWriter(w)
	e := &encoder{w: bw}
	t.encode(e, now.Unix())
	return bw.Flush()
}

// Simulated process lifetime: every counter and the histogram restart from zero when the
// process restarts, every restartPeriod+instance*restartStagger seconds.
const (
	restartPeriod  = 100
	restartStagger = 20

	batchPeriod        = 30 // seconds between batch job runs
	intermittentPeriod = 45 // demo_intermittent_metric is exposed for this long, then hidden as long
	holidayPeriod      = 90 // demo_is_holiday is 1 one period in three
)

// Label sets of the histogram, with the largest number of requests a second and the typical
// duration in seconds.
var apiSeries = []struct {
	method, path, status string
	maxPerSecond         int
	typical              float64
}{
	{"GET", "/api/bar", "200", 3, 0.04},
	{"GET", "/api/bar", "500", 0, 0.06},
	{"GET", "/api/foo", "200", 4, 0.03},
	{"GET", "/api/foo", "500", 0, 0.03},
	{"GET", "/api/nonexistent", "404", 1, 0.00002},
	{"POST", "/api/bar", "200", 1, 0.14},
	{"POST", "/api/foo", "200", 1, 0.06},
	{"POST", "/api/foo", "500", 0, 0.06},
}

// apiBuckets are the classic bucket upper bounds: 25 exponential buckets from 0.1ms, factor 1.5,
// computed as client_golang's ExponentialBuckets does so that the `le` values match the sample.
var apiBuckets = func() []float64 {
	b := make([]float64, 25)
	v := 0.0001
	for i := range b {
		b[i] = v
		v *= 1.5
	}
	return b
}()

var (
	cpuModes    = []string{"idle", "system", "user"}
	cpuRates    = []float64{0.55, 0.2, 0.35} // mean CPU seconds per second per mode
	memoryTypes = []string{"buffers", "cached", "free", "used"}
	memoryBase  = []float64{1.3e8, 2.7e9, 4.6e9, 1.15e9}
)

// Keys that separate the random streams of the different quantities.
const (
	keyCPU = iota + 1
	keyShipped
	keyAPICount
	keyAPIDuration
	keyInProgress
	keyMemory
	keyDisk
	keyBatchDuration
	keyBatchBytes
	keyBatchFail
	keyPhase
)

func (t Target) encode(e *encoder, now int64) {
	life := t.lifeStart(now)

	e.family("demo_api_http_requests_in_progress", "gauge", "The current number of API HTTP requests in progress.")
	e.sample("demo_api_http_requests_in_progress", nil, math.Floor(4*t.uniform(keyInProgress, 0, now)))

	e.family("demo_api_request_duration_seconds", "histogram", "A histogram of the API HTTP request durations in seconds.")
	for i, s := range apiSeries {
		counts, count, sum := t.apiHistogram(i, life, now)
		labels := []string{"method", s.method, "path", s.path, "status", s.status}
		for j, le := range apiBuckets {
			e.sample("demo_api_request_duration_seconds_bucket", append(labels, "le", formatFloat(le)), float64(counts[j]))
		}
		e.sample("demo_api_request_duration_seconds_bucket", append(labels, "le", "+Inf"), float64(count))
		e.sample("demo_api_request_duration_seconds_sum", labels, sum)
		e.sample("demo_api_request_duration_seconds_count", labels, float64(count))
	}

	lastRun, lastSuccess := t.batch(now)
	var runDuration, runBytes float64
	if lastRun > 0 {
		runDuration = math.Round(100*(2+8*t.uniform(keyBatchDuration, 0, lastRun))) / 100
		runBytes = math.Floor(1e6 * (1 + 4*t.uniform(keyBatchBytes, 0, lastRun)))
	}
	e.family("demo_batch_last_run_duration_seconds", "gauge", "The duration in seconds of the last batch job run.")
	e.sample("demo_batch_last_run_duration_seconds", nil, runDuration)
	e.family("demo_batch_last_run_processed_bytes", "gauge", "The number of bytes processed by the demo batch job in the last run.")
	e.sample("demo_batch_last_run_processed_bytes", nil, runBytes)
	e.family("demo_batch_last_run_timestamp_seconds", "gauge", "The Unix timestamp in seconds since the last demo batch job run.")
	e.sample("demo_batch_last_run_timestamp_seconds", nil, float64(lastRun))
	e.family("demo_batch_last_success_timestamp_seconds", "gauge", "The Unix timestamp in seconds since the last successful demo batch job completion.")
	e.sample("demo_batch_last_success_timestamp_seconds", nil, float64(lastSuccess))

	e.family("demo_cpu_usage_seconds_total", "counter", "The CPU usage in seconds split by mode.")
	for i, mode := range cpuModes {
		var v float64
		for tick := life + 1; tick <= now; tick++ {
			v += cpuRates[i] * (0.5 + t.uniform(keyCPU, i, tick))
		}
		e.sample("demo_cpu_usage_seconds_total", []string{"mode", mode}, v)
	}

	e.family("demo_disk_total_bytes", "gauge", "Total disk space in bytes.")
	e.sample("demo_disk_total_bytes", nil, 1.6e11)
	// Disk usage grows by about 50kB/s and is cleaned up every hour, with some noise.
	e.family("demo_disk_usage_bytes", "gauge", "Disk usage in bytes.")
	e.sample("demo_disk_usage_bytes", nil, math.Floor(1.6e10+5e4*float64(t.mod(now, 3600))+1e5*t.uniform(keyDisk, 0, now)))

	holiday := 0.0
	if t.mod(now, 3*holidayPeriod) < holidayPeriod {
		holiday = 1
	}
	e.family("demo_is_holiday", "gauge", "Set to 1 if it is currently a holiday, 0 otherwise.")
	e.sample("demo_is_holiday", nil, holiday)

	e.family("demo_items_shipped_total", "counter", "The total number of shipped items. Affected heavily by whether it's currently a holiday.")
	var shipped float64
	for tick := life + 1; tick <= now; tick++ {
		maxItems := 4.0
		if t.mod(tick, 3*holidayPeriod) < holidayPeriod {
			maxItems = 1
		}
		shipped += math.Floor(maxItems * t.uniform(keyShipped, 0, tick))
	}
	e.sample("demo_items_shipped_total", nil, shipped)

	if t.mod(now, 2*intermittentPeriod) < intermittentPeriod {
		e.family("demo_intermittent_metric", "gauge", "A metric that is only exposed intermittently.")
		e.sample("demo_intermittent_metric", nil, float64(t.mod(now, 2*intermittentPeriod)))
	}

	// Memory wanders around a base value per type: a slow wave plus per-second jitter.
	e.family("demo_memory_usage_bytes", "gauge", "The memory usage by type.")
	for i, typ := range memoryTypes {
		phase := 2 * math.Pi * t.uniform(keyPhase, i, 0)
		wave := math.Sin(2*math.Pi*float64(now)/float64(300+60*i) + phase)
		v := memoryBase[i] * (1 + 0.2*wave + 0.02*(t.uniform(keyMemory, i, now)-0.5))
		e.sample("demo_memory_usage_bytes", []string{"type", typ}, math.Floor(v))
	}

	e.family("demo_num_cpus", "gauge", "The number of CPUs.")
	e.sample("demo_num_cpus", nil, 4)
}

// apiHistogram returns the cumulative bucket counts, the count and the sum of the observations
// of apiSeries[i] since the process started at life.
func (t Target) apiHistogram(i int, life, now int64) ([]uint64, uint64, float64) {
	s := apiSeries[i]
	counts := make([]uint64, len(apiBuckets))
	var count uint64
	var sum float64
	for tick := life + 1; tick <= now; tick++ {
		u := t.uniform(keyAPICount, i, tick)
		n := int(u * float64(s.maxPerSecond+1))
		if s.maxPerSecond == 0 && u > 0.97 { // errors: a few a minute
			n = 1
		}
		for k := range n {
			// A duration between 0.5 and 2.5 times the typical one.
			d := s.typical * (0.5 + 2*t.uniform(keyAPIDuration, i*8+k, tick))
			count++
			sum += d
			for j, le := range apiBuckets {
				if d <= le {
					counts[j]++
				}
			}
		}
	}
	return counts, count, sum
}

// lifeStart returns the second the simulated process last (re)started, at or before now.
func (t Target) lifeStart(now int64) int64 {
	return now - t.mod(now, int64(restartPeriod+restartStagger*t.Instance))
}

// batch returns the start second of the latest batch run and of the latest successful one (0 if
// none in the last 20 runs). One run in five fails.
func (t Target) batch(now int64) (lastRun, lastSuccess int64) {
	lastRun = now - t.mod(now, batchPeriod)
	for run := lastRun; run > lastRun-20*batchPeriod; run -= batchPeriod {
		if t.uniform(keyBatchFail, 0, run) >= 0.2 {
			return lastRun, run
		}
	}
	return lastRun, 0
}

// mod returns (now + a phase of this instance) modulo period, in [0, period).
func (t Target) mod(now, period int64) int64 {
	phase := int64(t.uniform(keyPhase, 1000, period) * float64(period))
	m := (now + phase) % period
	if m < 0 {
		m += period
	}
	return m
}

// uniform returns a number in [0, 1) that depends only on the seed, the instance, key, sub and tick.
func (t Target) uniform(key, sub int, tick int64) float64 {
	h := splitmix(t.Seed ^ splitmix(uint64(t.Instance)<<40^uint64(key)<<32^uint64(sub)) ^ splitmix(uint64(tick)))
	return float64(h>>11) / (1 << 53)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// encoder writes the text exposition format.
type encoder struct{ w *bufio.Writer }

func (e *encoder) family(name, typ, help string) {
	e.w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// sample writes name{labels} value; labels alternate names and values.
func (e *encoder) sample(name string, labels []string, v float64) {
	e.w.WriteString(name)
	if len(labels) > 0 {
		e.w.WriteByte('{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				e.w.WriteByte(',')
			}
			e.w.WriteString(labels[i] + `="` + escape(labels[i+1]) + `"`)
		}
		e.w.WriteByte('}')
	}
	e.w.WriteString(" " + formatFloat(v) + "\n")
}

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(s string) string { return escaper.Replace(s) }

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
