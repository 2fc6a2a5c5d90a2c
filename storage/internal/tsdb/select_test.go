package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// selectFixture stores, with one-hour partitions:
//
//	a: every 10s over [0, 3.5h]          1261 samples, 3-4 chunks per partition, 4 partitions
//	b: every 15s over [0, 50m]           partition 0 only
//	c: every 7s over [3h, 3h+20m]        partition 3 only
//	d: every 1s over [2h, 2h+10m]        partition 2, early
//	e: every 1s over [2h+50m, 2h+55m]    partition 2, late
func selectFixture(t *testing.T) (*DB, map[string][]smp) {
	// Not merged: the selects must cross the many chunks of 120 samples that appends cut.
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, noMerge: true})
	data := map[string][]smp{
		`{__name__="a"}`: floatRange(0, 3*hourMs+30*minMs, 10_000),
		`{__name__="b"}`: floatRange(0, 50*minMs, 15_000),
		`{__name__="c"}`: floatRange(3*hourMs, 3*hourMs+20*minMs, 7_000),
		`{__name__="d"}`: floatRange(2*hourMs, 2*hourMs+10*minMs, 1_000),
		`{__name__="e"}`: floatRange(2*hourMs+50*minMs, 2*hourMs+55*minMs, 1_000),
	}
	// Interleave the series over several commits of a few hundred samples each.
	for start := int64(0); start <= 4*hourMs; start += 20 * minMs {
		for _, name := range []string{"a", "b", "c", "d", "e"} {
			batch := trim(data[`{__name__="`+name+`"}`], start, start+20*minMs-1)
			if len(batch) > 0 {
				mustAppend(t, db, lbls("__name__", name), batch...)
			}
		}
	}
	require.Equal(t, []int64{0, 1, 2, 3}, partitionsOf(db))
	return db, data
}

func TestSelectAcrossChunksAndPartitions(t *testing.T) {
	db, data := selectFixture(t)
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	want := func(mint, maxt int64) map[string][]smp {
		out := map[string][]smp{}
		for k, s := range data {
			if got := trim(s, mint, maxt); len(got) > 0 {
				out[k] = got
			}
		}
		return out
	}

	// The head of series a spans several chunks: check the chunk layout the test relies on.
	q, err := db.newQuerier(0, 4*hourMs)
	require.NoError(t, err)
	refs, err := q.postings(0, 4*hourMs, []*labels.Matcher{eq("__name__", "a")})
	require.NoError(t, err)
	chunks, err := q.chunks(context.Background(), refs, 0, 4*hourMs, true)
	require.NoError(t, err)
	require.NoError(t, q.Close())
	require.Len(t, chunks, 1)
	require.Equal(t, 3+3+3+2, len(chunks[0]), "a: 360 samples per hour in chunks of 120, then 181 in the last hour")
	for i := 1; i < len(chunks[0]); i++ {
		require.Less(t, chunks[0][i-1].maxt, chunks[0][i].mint, "chunks overlap")
	}

	for _, r := range [][2]int64{
		{0, 4 * hourMs},
		{-hourMs, 10 * hourMs},
		{15_005, 1_234_567},                                 // inside partition 0, inside chunks
		{hourMs - 5_000, hourMs + 5_000},                    // across a partition boundary
		{hourMs + 15_005, 2*hourMs + 7*minMs + 3},           // starts and ends mid-chunk, two partitions
		{2*hourMs + 30*minMs, 2*hourMs + 40*minMs},          // d and e are indexed but have nothing here
		{3*hourMs + 30*minMs, 3*hourMs + 30*minMs},          // one sample of a
		{3*hourMs + 30*minMs + 1, 5 * hourMs},               // after everything
		{55 * minMs, 56 * minMs},                            // between b's end and the next hour
		{2*hourMs + 10*minMs, 2*hourMs + 10*minMs + 10_000}, // d's last sample and a's
	} {
		got := selectStrict(t, db, r[0], r[1], nil, all)
		requireSameSeries(t, want(r[0], r[1]), got, "range ", r)
	}

	// Series with no sample in range are absent even though their partition matches.
	got := selectStrict(t, db, 2*hourMs+30*minMs, 2*hourMs+40*minMs, nil, all)
	require.Equal(t, `{__name__="a"}`, keys(got))

	// Hints override the querier's range; the iterator trims to them.
	hints := &storage.SelectHints{Start: hourMs + 1, End: hourMs + 5*minMs}
	got = selectStrict(t, db, 0, 4*hourMs, hints, all)
	requireSameSeries(t, want(hourMs+1, hourMs+5*minMs), got)

	// With trimming disabled the iterator returns whole chunks: a superset of the range that
	// is a contiguous run of the series.
	hints = &storage.SelectHints{Start: hourMs + 1, End: hourMs + 5*minMs, DisableTrimming: true}
	got = selectStrict(t, db, 0, 4*hourMs, hints, all)
	require.Equal(t, `{__name__="a"}`, keys(got))
	a := got[`{__name__="a"}`]
	require.Less(t, a[0].T, hourMs+1)
	require.Subset(t, a, trim(data[`{__name__="a"}`], hourMs+1, hourMs+5*minMs))
	requireSamples(t, trim(data[`{__name__="a"}`], a[0].T, a[len(a)-1].T), a)

	// The "series" function hint returns the series without needing data.
	q2, err := db.Querier(0, 4*hourMs)
	require.NoError(t, err)
	ss := q2.Select(context.Background(), true, &storage.SelectHints{Start: 0, End: 4 * hourMs, Func: "series"}, all)
	var names []string
	for ss.Next() {
		names = append(names, ss.At().Labels().Get("__name__"))
	}
	require.NoError(t, ss.Err())
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, names)
	require.NoError(t, q2.Close())
}

// refIter is the reference for a series iterator over a sorted slice.
type refIter struct {
	s   []smp
	pos int // -1 before the first Next or Seek
}

func (r *refIter) next() (smp, bool) {
	if r.pos < len(r.s) {
		r.pos++
	}
	return r.cur()
}

func (r *refIter) seek(t int64) (smp, bool) {
	if r.pos >= 0 && r.pos < len(r.s) && r.s[r.pos].T >= t {
		return r.s[r.pos], true
	}
	i := max(r.pos, 0)
	for i < len(r.s) && r.s[i].T < t {
		i++
	}
	r.pos = i
	return r.cur()
}

func (r *refIter) cur() (smp, bool) {
	if r.pos < 0 || r.pos >= len(r.s) {
		return smp{}, false
	}
	return r.s[r.pos], true
}

func TestSeriesIteratorSeek(t *testing.T) {
	db, data := selectFixture(t)
	a := data[`{__name__="a"}`]
	mint, maxt := hourMs+15_005, 3*hourMs+7*minMs+3
	q, err := db.Querier(mint, maxt)
	require.NoError(t, err)
	defer q.Close()
	series := func() storage.Series {
		ss := q.Select(context.Background(), false, nil, eq("__name__", "a"))
		require.True(t, ss.Next())
		return ss.At()
	}
	s := series()
	in := trim(a, mint, maxt)

	// Explicit cases.
	it := s.Iterator(nil)
	require.Equal(t, chunkenc.ValFloat, it.Seek(0), "seek before mint lands on the first sample in range")
	require.Equal(t, in[0].T, it.AtT())
	mid := 2*hourMs + 33*minMs + 5_001 // between samples, mid-chunk, partition 2
	require.Equal(t, chunkenc.ValFloat, it.Seek(mid))
	require.Equal(t, 2*hourMs+33*minMs+10_000, it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(hourMs), "seek backwards is a no-op")
	ts, v := it.At()
	require.Equal(t, 2*hourMs+33*minMs+10_000, ts)
	require.Equal(t, float64(ts)/10, v)
	require.Equal(t, chunkenc.ValFloat, it.Next())
	require.Equal(t, 2*hourMs+33*minMs+20_000, it.AtT())
	require.Equal(t, chunkenc.ValFloat, it.Seek(3*hourMs), "seek to a partition's first sample")
	require.Equal(t, 3*hourMs, it.AtT())
	require.Equal(t, chunkenc.ValNone, it.Seek(maxt+1), "seek past maxt")
	require.Equal(t, chunkenc.ValNone, it.Next())
	require.Equal(t, chunkenc.ValNone, it.Seek(0))
	require.NoError(t, it.Err())

	// Reusing the iterator resets it.
	it = s.Iterator(it)
	requireSamples(t, in, readIter(t, it))

	// Randomized sequences of Next and Seek against the reference.
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		it := series().Iterator(nil)
		ref := &refIter{s: in, pos: -1}
		for step := range 40 {
			var (
				vt      chunkenc.ValueType
				want    smp
				wantOK  bool
				seekArg int64
				isSeek  = rng.IntN(3) > 0
			)
			if isSeek {
				seekArg = mint - 20_000 + rng.Int64N(maxt-mint+40_000)
				if rng.IntN(4) == 0 && ref.pos >= 0 && ref.pos < len(in) {
					seekArg = in[ref.pos].T - rng.Int64N(3)*10_000 // at or before the current one
				}
				vt = it.Seek(seekArg)
				want, wantOK = ref.seek(seekArg)
			} else {
				vt = it.Next()
				want, wantOK = ref.next()
			}
			if !wantOK {
				require.Equal(t, chunkenc.ValNone, vt, "round %d step %d seek=%v(%d)", round, step, isSeek, seekArg)
				break
			}
			require.Equal(t, chunkenc.ValFloat, vt, "round %d step %d seek=%v(%d)", round, step, isSeek, seekArg)
			requireSamples(t, []smp{want}, []smp{atIter(it, vt)}, "round ", round, " step ", step)
		}
		require.NoError(t, it.Err())
	}
}

// TestSeriesIteratorNextFloats reads series with random mixes of NextFloats and Next over
// random ranges, across closed (decimal) chunks, partitions and the open head chunk (another
// encoding, where NextFloats declines), and requires exactly the samples Next alone reads;
// and that a step grid's Select declines runs (Next thins what it returns).
func TestSeriesIteratorNextFloats(t *testing.T) {
	db, data := selectFixture(t)
	rng := rand.New(rand.NewPCG(3, 4))
	runs, declined := 0, 0
	for round := range 300 {
		mint := rng.Int64N(4 * hourMs)
		maxt := mint + rng.Int64N(4*hourMs)
		if round == 0 {
			mint, maxt = math.MinInt64, math.MaxInt64
		}
		q, err := db.Querier(mint, maxt)
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() }) // before the DB's, on failure too (a second Close is harmless)
		ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
		for ss.Next() {
			s := ss.At()
			want := trim(data[s.Labels().String()], mint, maxt)
			it := s.Iterator(nil).(interface {
				chunkenc.Iterator
				NextFloats() ([]int64, []float64, bool)
			})
			var got []smp
			for {
				if rng.IntN(3) > 0 {
					if ts, vs, ok := it.NextFloats(); ok {
						require.NotEmpty(t, ts)
						require.Len(t, vs, len(ts))
						for i := range ts {
							got = append(got, smp{T: ts[i], F: vs[i]})
						}
						last, f := it.At()
						require.Equal(t, smp{T: ts[len(ts)-1], F: vs[len(vs)-1]}, smp{T: last, F: f}, "At after a run is its last sample")
						runs++
						continue
					}
					declined++
				}
				vt := it.Next()
				if vt == chunkenc.ValNone {
					break
				}
				got = append(got, atIter(it, vt))
			}
			require.NoError(t, it.Err())
			_, _, ok := it.NextFloats()
			require.False(t, ok, "a run after the end")
			requireSamples(t, want, got, fmt.Sprintf("series %s in [%d, %d]", s.Labels(), mint, maxt))
		}
		require.NoError(t, ss.Err())
		require.NoError(t, q.Close())
	}
	require.Greater(t, runs, 1000)
	require.Greater(t, declined, 100)

	// A Select thinned for a step grid reads sample by sample.
	g := StepGrid{Start: hourMs, End: 2 * hourMs, Step: 60_000, Lookback: 5 * minMs}
	q, err := db.Querier(g.Start-g.Lookback+1, g.End)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(WithStepGrid(context.Background(), g), true, &storage.SelectHints{Start: g.Start - g.Lookback + 1, End: g.End, Step: g.Step}, eq("__name__", "a"))
	require.True(t, ss.Next())
	it := ss.At().Iterator(nil).(interface {
		NextFloats() ([]int64, []float64, bool)
	})
	_, _, ok := it.NextFloats()
	require.False(t, ok)
}
