package conformance

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/prometheus/common/model"
)

// Tolerance is the relative difference allowed between two sample values (prometheus/compliance
// uses the same).
const Tolerance = 1e-5

// Diff returns "" when the two answers of a range query are equal, else a description of the
// first difference: the first series (in label order) present on one side only or whose samples
// differ, and its first differing sample. Labels must be equal exactly; values may differ by a
// relative Tolerance, NaN equals NaN (of any payload, so stale markers never reach here) and
// infinities of the same sign are equal.
func Diff(ref, got model.Value) string {
	if ref.Type() != got.Type() {
		return fmt.Sprintf("result type: reference %s, got %s", ref.Type(), got.Type())
	}
	switch r := ref.(type) {
	case model.Matrix:
		return diffMatrix(r, got.(model.Matrix))
	case *model.Scalar:
		g := got.(*model.Scalar)
		if r.Timestamp != g.Timestamp || !equalFloat(float64(r.Value), float64(g.Value)) {
			return fmt.Sprintf("scalar: reference %s, got %s", r, g)
		}
		return ""
	case model.Vector:
		return diffMatrix(vectorAsMatrix(r), vectorAsMatrix(got.(model.Vector)))
	default:
		if ref.String() != got.String() {
			return fmt.Sprintf("reference %s, got %s", ref, got)
		}
		return ""
	}
}

func vectorAsMatrix(v model.Vector) model.Matrix {
	m := make(model.Matrix, 0, len(v))
	for _, s := range v {
		ss := &model.SampleStream{Metric: s.Metric}
		if s.Histogram != nil {
			ss.Histograms = []model.SampleHistogramPair{{Timestamp: s.Timestamp, Histogram: s.Histogram}}
		} else {
			ss.Values = []model.SamplePair{{Timestamp: s.Timestamp, Value: s.Value}}
		}
		m = append(m, ss)
	}
	return m
}

func diffMatrix(ref, got model.Matrix) string {
	sortMatrix(ref)
	sortMatrix(got)
	i, j := 0, 0
	for i < len(ref) || j < len(got) {
		var c int
		switch {
		case i == len(ref):
			c = 1
		case j == len(got):
			c = -1
		default:
			c = compareMetric(ref[i].Metric, got[j].Metric)
		}
		switch {
		case c < 0:
			return fmt.Sprintf("series %s (%d samples from %s) only in the reference (%d series there, %d here)",
				ref[i].Metric, len(ref[i].Values)+len(ref[i].Histograms), firstTime(ref[i]), len(ref), len(got))
		case c > 0:
			return fmt.Sprintf("series %s (%d samples from %s) only in the system under test (%d series there, %d in the reference)",
				got[j].Metric, len(got[j].Values)+len(got[j].Histograms), firstTime(got[j]), len(got), len(ref))
		}
		if d := diffSamples(ref[i], got[j]); d != "" {
			return fmt.Sprintf("series %s: %s", ref[i].Metric, d)
		}
		i++
		j++
	}
	return ""
}

func firstTime(s *model.SampleStream) string {
	switch {
	case len(s.Values) > 0:
		return s.Values[0].Timestamp.Time().UTC().Format("15:04:05.000")
	case len(s.Histograms) > 0:
		return s.Histograms[0].Timestamp.Time().UTC().Format("15:04:05.000")
	}
	return "nowhere"
}

func diffSamples(ref, got *model.SampleStream) string {
	n := max(len(ref.Values), len(got.Values))
	for k := range n {
		switch {
		case k >= len(ref.Values):
			return fmt.Sprintf("extra sample %s (reference has %d samples, got %d)", got.Values[k], len(ref.Values), len(got.Values))
		case k >= len(got.Values):
			return fmt.Sprintf("missing sample %s (reference has %d samples, got %d)", ref.Values[k], len(ref.Values), len(got.Values))
		}
		r, g := ref.Values[k], got.Values[k]
		if r.Timestamp != g.Timestamp || !equalFloat(float64(r.Value), float64(g.Value)) {
			return fmt.Sprintf("sample %d: reference %s, got %s", k, r, g)
		}
	}
	n = max(len(ref.Histograms), len(got.Histograms))
	for k := range n {
		switch {
		case k >= len(ref.Histograms):
			return fmt.Sprintf("extra histogram sample at %s (reference has %d, got %d)", got.Histograms[k].Timestamp, len(ref.Histograms), len(got.Histograms))
		case k >= len(got.Histograms):
			return fmt.Sprintf("missing histogram sample at %s (reference has %d, got %d)", ref.Histograms[k].Timestamp, len(ref.Histograms), len(got.Histograms))
		}
		r, g := ref.Histograms[k], got.Histograms[k]
		if r.Timestamp != g.Timestamp || !equalHistogram(r.Histogram, g.Histogram) {
			return fmt.Sprintf("histogram sample %d: reference %s, got %s", k, r, g)
		}
	}
	return ""
}

func equalHistogram(a, b *model.SampleHistogram) bool {
	if !equalFloat(float64(a.Count), float64(b.Count)) || !equalFloat(float64(a.Sum), float64(b.Sum)) || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	for i, x := range a.Buckets {
		y := b.Buckets[i]
		if x.Boundaries != y.Boundaries || !equalFloat(float64(x.Lower), float64(y.Lower)) ||
			!equalFloat(float64(x.Upper), float64(y.Upper)) || !equalFloat(float64(x.Count), float64(y.Count)) {
			return false
		}
	}
	return true
}

// equalFloat reports whether a and b are equal within the relative Tolerance (as
// cmpopts.EquateApprox(Tolerance, 0)), with NaN equal to NaN.
func equalFloat(a, b float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case a == b: // also equal infinities
		return true
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return false
	}
	return math.Abs(a-b) <= Tolerance*math.Min(math.Abs(a), math.Abs(b))
}

func sortMatrix(m model.Matrix) {
	sort.SliceStable(m, func(i, j int) bool { return compareMetric(m[i].Metric, m[j].Metric) < 0 })
}

// compareMetric orders label sets as Prometheus does: by sorted label names, then values.
func compareMetric(a, b model.Metric) int {
	return strings.Compare(canonical(a), canonical(b))
}

func canonical(m model.Metric) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, string(n))
	}
	sort.Strings(names)
	var sb strings.Builder
	for _, n := range names {
		sb.WriteString(n)
		sb.WriteByte(0)
		sb.WriteString(string(m[model.LabelName(n)]))
		sb.WriteByte(0)
	}
	return sb.String()
}
