package tsdb

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/tsdbutil"
	"github.com/stretchr/testify/require"
)

func chunkCount(t testing.TB, db *DB, ls labels.Labels) int {
	t.Helper()
	return requireChunksDisjoint(t, db, ls)
}

func TestNativeHistograms(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: time.Hour})
	hs, fhs := lbls("__name__", "h"), lbls("__name__", "fh")
	var wantH, wantFH []smp
	for i := range int64(30) {
		wantH = append(wantH, smp{T: i * 1000, H: tsdbutil.GenerateTestHistogram(i)})
		wantFH = append(wantFH, smp{T: i * 1000, FH: tsdbutil.GenerateTestFloatHistogram(i)})
	}
	mustAppend(t, db, hs, wantH...)
	mustAppend(t, db, fhs, wantFH...)
	require.Equal(t, 1, chunkCount(t, db, hs))
	require.Equal(t, 1, chunkCount(t, db, fhs))

	// A counter reset (counts go down) and then a schema change each start a new chunk.
	reset := smp{T: 30_000, H: tsdbutil.GenerateTestHistogram(0)}
	fReset := smp{T: 30_000, FH: tsdbutil.GenerateTestFloatHistogram(0)}
	schemaH := tsdbutil.GenerateTestHistogram(1)
	require.NoError(t, schemaH.ReduceResolution(0))
	schemaFH := tsdbutil.GenerateTestFloatHistogram(1)
	require.NoError(t, schemaFH.ReduceResolution(0))
	wantH = append(wantH, reset, smp{T: 31_000, H: tsdbutil.GenerateTestHistogram(1)}, smp{T: 32_000, H: schemaH})
	wantFH = append(wantFH, fReset, smp{T: 31_000, FH: tsdbutil.GenerateTestFloatHistogram(1)}, smp{T: 32_000, FH: schemaFH})
	mustAppend(t, db, hs, wantH[30:]...)
	mustAppend(t, db, fhs, wantFH[30:]...)
	require.Equal(t, 3, chunkCount(t, db, hs))
	require.Equal(t, 3, chunkCount(t, db, fhs))

	requireSamples(t, wantH, seriesSamples(t, db, hs))
	requireSamples(t, wantFH, seriesSamples(t, db, fhs))

	// The sample after the reset must not claim to continue the counter (chunkenc reports
	// the first sample of a chunk as "unknown", so PromQL compares it with the previous one).
	got := selectAll(t, db, 30_000, 31_000, nil, eq("__name__", "h"))
	require.Len(t, got[hs.String()], 2)
	require.NotEqual(t, histogram.NotCounterReset, got[hs.String()][0].H.CounterResetHint)
	require.Equal(t, histogram.NotCounterReset, got[hs.String()][1].H.CounterResetHint)

	// Duplicates: the same histogram is ignored, another one is refused.
	require.NoError(t, appendAll(t, db, hs, wantH[len(wantH)-1])[0])
	require.ErrorIs(t, appendAll(t, db, hs, smp{T: 32_000, H: tsdbutil.GenerateTestHistogram(7)})[0], storage.ErrDuplicateSampleForTimestamp)
	// An out-of-order histogram merges into its chunk.
	ooo := smp{T: 5_500, H: tsdbutil.GenerateTestHistogram(5)}
	mustAppend(t, db, hs, ooo)
	wantH = append(wantH[:6], append([]smp{ooo}, wantH[6:]...)...)
	requireSamples(t, wantH, seriesSamples(t, db, hs))
	// An invalid histogram is refused.
	bad := tsdbutil.GenerateTestHistogram(3)
	bad.Count = 1
	require.Error(t, appendAll(t, db, hs, smp{T: 40_000, H: bad})[0])

	db = reopen(t, db, fs)
	requireSamples(t, wantH, seriesSamples(t, db, hs))
	requireSamples(t, wantFH, seriesSamples(t, db, fhs))
	// After reopen the head continues with the stored chunk.
	next := smp{T: 33_000, FH: schemaFH.Copy()}
	next.FH.Count += 10
	next.FH.ZeroCount += 10
	mustAppend(t, db, fhs, next)
	wantFH = append(wantFH, next)
	requireSamples(t, wantFH, seriesSamples(t, db, fhs))
	require.Equal(t, 3, chunkCount(t, db, fhs))
}

func TestMixedSampleKindsAndStaleMarkers(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour})
	ls := lbls("__name__", "mixed")
	var want []smp
	tt := int64(0)
	add := func(s smp) {
		s.T = tt
		tt += 1000
		want = append(want, s)
	}
	for i := range int64(5) {
		add(smp{F: float64(i)})
	}
	add(smp{F: math.Float64frombits(value.StaleNaN)})
	for i := range int64(5) {
		add(smp{H: tsdbutil.GenerateTestHistogram(i)})
	}
	add(smp{F: math.Float64frombits(value.StaleNaN)})
	for i := range int64(5) {
		add(smp{FH: tsdbutil.GenerateTestFloatHistogram(i)})
	}
	add(smp{F: math.NaN()}) // an ordinary NaN is not a stale marker
	add(smp{F: math.Float64frombits(value.StaleNaN)})
	for i := range int64(3) {
		add(smp{H: tsdbutil.GenerateTestGaugeHistogram(i)})
	}
	add(smp{F: 42})
	add(smp{F: math.Float64frombits(value.StaleNaN)})

	// Half in one commit, the rest one sample per commit.
	mustAppend(t, db, ls, want[:10]...)
	for _, s := range want[10:] {
		mustAppend(t, db, ls, s)
	}
	// A second stale marker at the same time is a harmless duplicate.
	require.NoError(t, appendAll(t, db, ls, want[len(want)-1])[0])
	require.ErrorIs(t, appendAll(t, db, ls, smp{T: want[len(want)-1].T, F: 1})[0], storage.ErrDuplicateSampleForTimestamp)

	check := func(db *DB) {
		t.Helper()
		got := seriesSamples(t, db, ls)
		requireSamples(t, want, got)
		stale := 0
		for i, s := range got {
			if s.H == nil && s.FH == nil && value.IsStaleNaN(s.F) {
				require.Equal(t, value.StaleNaN, math.Float64bits(s.F), "stale marker bits at %d", i)
				stale++
			}
		}
		require.Equal(t, 4, stale)
		// Value types as the iterator reports them.
		q, err := db.Querier(0, tt)
		require.NoError(t, err)
		defer q.Close()
		ss := q.Select(context.Background(), false, nil, eq("__name__", "mixed"))
		require.True(t, ss.Next())
		it := ss.At().Iterator(nil)
		for i := 0; ; i++ {
			vt := it.Next()
			if vt == chunkenc.ValNone {
				require.Equal(t, len(want), i)
				break
			}
			wantVT := chunkenc.ValFloat
			if want[i].H != nil {
				wantVT = chunkenc.ValHistogram
			} else if want[i].FH != nil {
				wantVT = chunkenc.ValFloatHistogram
			}
			require.Equal(t, wantVT, vt, "sample %d", i)
		}
	}
	check(db)
	require.GreaterOrEqual(t, chunkCount(t, db, ls), 7, "every change of kind starts a chunk")
	db = reopen(t, db, fs)
	check(db)
}

// TestHistogramHeadCutKeepsCounterResetHint: a histogram head cut for a new partition hands its
// appender to the next chunk, as Prometheus's head does at a cut, so that the next chunk knows
// whether the counter was reset between them (NotCounterReset here, CounterReset after a drop)
// instead of leaving it unknown.
func TestHistogramHeadCutKeepsCounterResetHint(t *testing.T) {
	for _, c := range []struct {
		name        string
		first, next int64
		want        chunkenc.CounterResetHeader
		float       bool
	}{
		{"integer, growing", 1, 2, chunkenc.NotCounterReset, false},
		{"integer, reset", 5, 1, chunkenc.CounterReset, false},
		{"float, growing", 1, 2, chunkenc.NotCounterReset, true},
		{"float, reset", 5, 1, chunkenc.CounterReset, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			smp := func(ts, i int64) sample {
				if c.float {
					return sample{t: ts, fh: tsdbutil.GenerateTestFloatHistogram(i)}
				}
				return sample{t: ts, h: tsdbutil.GenerateTestHistogram(i)}
			}
			var b chunkBuilder
			cuts := 0
			emit := func(*chunkBuilder) { cuts++ }
			require.NoError(t, b.append(smp(1_000, c.first), 0, emit))
			require.NoError(t, b.append(smp(2_000, c.next), 1, emit)) // another partition: a new chunk
			require.Equal(t, 1, cuts)
			chk, ok := b.chunk().(interface {
				GetCounterResetHeader() chunkenc.CounterResetHeader
			})
			require.True(t, ok, "head is a %T", b.chunk())
			require.Equal(t, c.want, chk.GetCounterResetHeader())
		})
	}
}
