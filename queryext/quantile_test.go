package queryext

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// quantileOf gives the engine's quantile to the bit (Prometheus's own quantile, reached through
// quantile_over_time, which sorts its values as the quantile aggregation does): values with
// NaNs of several payloads, zeros of both signs, infinities and many equal values, in random
// orders, at quantiles inside and outside [0, 1].
func TestQuantileOfMatchesEngine(t *testing.T) {
	engine := promql.FunctionCalls["quantile_over_time"]
	pool := []float64{math.NaN(), math.Float64frombits(0x7ff8000000000001), 0, math.Copysign(0, -1),
		math.Inf(1), math.Inf(-1), 1, 1, 2, -3.5, 1e300, -1e-300}
	rng := rand.New(rand.NewPCG(1, 2))
	qs := []float64{0, 0.1, 0.25, 0.5, 0.9, 0.99, 1, -0.5, 1.5, math.NaN()}
	for range 20000 {
		n := 1 + rng.IntN(70)
		values := make([]float64, n)
		for i := range values {
			if rng.IntN(3) == 0 {
				values[i] = rng.NormFloat64() * 100
			} else {
				values[i] = pool[rng.IntN(len(pool))]
			}
		}
		q := qs[rng.IntN(len(qs))]
		if rng.IntN(4) == 0 {
			q = rng.Float64()
		}
		in := promql.Matrix{{}}
		for i, v := range values {
			in[0].Floats = append(in[0].Floats, promql.FPoint{T: int64(i), F: v})
		}
		want, _ := engine([]promql.Vector{{promql.Sample{F: q}}}, in, parser.Expressions{&parser.NumberLiteral{Val: q}}, &promql.EvalNodeHelper{})
		got := quantileOf(q, append(valuesByValue{}, values...))
		if math.Float64bits(got) != math.Float64bits(want[0].F) {
			t.Fatalf("quantile %v of %v: %v (%#x), the engine's %v (%#x)", q, values, got, math.Float64bits(got), want[0].F, math.Float64bits(want[0].F))
		}
	}
}
