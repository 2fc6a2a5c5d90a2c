package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// floatSeries is one series of TestFloatValuesReadBackExactly: its name and its samples.
type floatSeries struct {
	name string
	ts   []int64
	vs   []float64
}

// floatFixture builds series whose values exercise every path of the store's float heads (the
// stream layout of storage/FORMAT.md and its way out to XOR2): short decimals whose exponent
// grows within a chunk, specials in the middle of a chunk (NaN, infinities, values that are
// no short decimal), integers around 2^53, random floats, negative decimals, jittered
// timestamps. n samples each, 15 s apart, ending at end.
func floatFixture(n int, end int64) []floatSeries {
	rng := rand.New(rand.NewPCG(11, 12))
	start := end - int64(n-1)*15_000
	at := func(i int) int64 { return start + int64(i)*15_000 }
	gen := map[string]func(i int) (int64, float64){
		"float_growing_exponent": func(i int) (int64, float64) {
			// 1 decimal, then 2, 3, 4 within each chunk of 120.
			return at(i), float64(1000+i) + []float64{0, 0.5, 0.25, 0.125, 0.0625}[i%120/24]
		},
		"float_specials": func(i int) (int64, float64) {
			switch i % 120 {
			case 17:
				return at(i), math.NaN()
			case 29:
				// -0 cannot be sent: proto3 leaves a zero double off the wire, and the
				// receiver reads +0 (as Prometheus's own receiver does). Unit tests cover it.
				return at(i), 1e21 + 12345
			case 41:
				return at(i), 1.0 / 3
			case 53:
				return at(i), math.Inf(1)
			case 65:
				return at(i), math.Inf(-1)
			case 77:
				return at(i), 5e-324
			case 89:
				return at(i), math.MaxFloat64
			}
			return at(i), math.Round(rng.Float64()*1e4) / 100
		},
		"float_big_integers": func(i int) (int64, float64) {
			return at(i), float64(int64(1)<<53 - 1000 + int64(i)*7)
		},
		"float_random": func(i int) (int64, float64) { return at(i), rng.NormFloat64() * 1e6 },
		"float_negative_decimals": func(i int) (int64, float64) {
			return at(i), -math.Round(rng.Float64()*1e6)/1000 - float64(i)
		},
		"float_jittered_timestamps": func(i int) (int64, float64) {
			return at(i) + rng.Int64N(200) - 100, float64(i) * 0.01
		},
	}
	var out []floatSeries
	for _, name := range []string{"float_growing_exponent", "float_specials", "float_big_integers", "float_random", "float_negative_decimals", "float_jittered_timestamps"} {
		s := floatSeries{name: name}
		for i := range n {
			t, v := gen[name](i)
			s.ts, s.vs = append(s.ts, t), append(s.vs, v)
		}
		out = append(out, s)
	}
	return out
}

// pushFloats sends samples [from, to) of every series, 30 rounds a request, over remote write 1.0.
func pushFloats(t *testing.T, url string, series []floatSeries, from, to int) {
	t.Helper()
	for lo := from; lo < to; lo += 30 {
		var req prompb.WriteRequest
		for _, s := range series {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: s.name}, {Name: "job", Value: "floats"}}}
			for i := lo; i < min(lo+30, to); i++ {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: s.ts[i], Value: s.vs[i]})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		b, err := req.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		rwPost(t, url, "application/x-protobuf;proto=prometheus.WriteRequest", b)
	}
}

// checkFloats reads samples [0, n) of every series back as a range selector and compares them
// bit for bit (NaN as NaN: the API writes every NaN as "NaN").
func checkFloats(t *testing.T, ports harness.Ports, series []floatSeries, n int) {
	t.Helper()
	api := newAPI(t, ports)
	for _, s := range series {
		last := s.ts[n-1]
		q := fmt.Sprintf(`%s{job="floats"}[%dms]`, s.name, last-s.ts[0]+1000)
		res, _, _, err := api.Query(queryCtx(t), q, time.UnixMilli(last))
		if err != nil {
			t.Fatalf("%s: %s", q, apiError(err))
		}
		m, ok := res.(model.Matrix)
		if !ok || len(m) != 1 {
			t.Fatalf("%s: %v, want one series", q, res)
		}
		got := m[0].Values
		if len(got) != n {
			t.Fatalf("%s: %d samples, want %d", q, len(got), n)
		}
		for i, p := range got {
			want, v := s.vs[i], float64(p.Value)
			same := math.Float64bits(v) == math.Float64bits(want) || (math.IsNaN(v) && math.IsNaN(want))
			if int64(p.Timestamp) != s.ts[i] || !same {
				t.Fatalf("%s sample %d: got %v (%#x) @ %d, want %v (%#x) @ %d", s.name, i, v, math.Float64bits(v), p.Timestamp, want, math.Float64bits(want), s.ts[i])
			}
		}
	}
}

// TestFloatValuesReadBackExactly pushes floats of every kind the store's heads treat apart
// through remote write and reads every sample back bit for bit: right away (the open heads in
// memory, chunks cut at 120 samples), after a clean restart (heads reopened from their packed
// copies), and after more samples and a kill -9 (heads rebuilt from the sample log and the quick
// copies of the last checkpoint).
func TestFloatValuesReadBackExactly(t *testing.T) {
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	proc := harness.StartReady(t, "metricstor (floats)", binary, configPath, ports)
	waitListening(t, proc, url)

	const n = 300
	series := floatFixture(n, time.Now().Add(-time.Minute).UnixMilli())
	const first = 200
	pushFloats(t, url, series, 0, first)
	t.Run("in_memory", func(t *testing.T) { checkFloats(t, ports, series, first) })

	proc.Stop(30 * time.Second)
	proc = harness.StartReady(t, "metricstor (floats, after SIGTERM)", binary, configPath, ports)
	waitListening(t, proc, url)
	t.Run("after_sigterm", func(t *testing.T) { checkFloats(t, ports, series, first) })

	pushFloats(t, url, series, first, n)
	proc.Kill()
	proc = harness.StartReady(t, "metricstor (floats, after kill -9)", binary, configPath, ports)
	waitListening(t, proc, url)
	t.Run("after_kill", func(t *testing.T) { checkFloats(t, ports, series, n) })
}
