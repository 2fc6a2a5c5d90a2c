package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// seriesSamples returns every sample of one series.
func seriesSamples(t testing.TB, db *DB, ls labels.Labels) []smp {
	t.Helper()
	var ms []*labels.Matcher
	ls.Range(func(l labels.Label) { ms = append(ms, eq(l.Name, l.Value)) })
	got := selectAll(t, db, -1<<62, 1<<62, nil, ms...)
	return got[ls.String()]
}

// requireChunksDisjoint checks that the stored chunks of the series are ordered, each within
// one partition, and do not overlap.
func requireChunksDisjoint(t testing.TB, db *DB, ls labels.Labels) int {
	t.Helper()
	s, err := db.getOrCreate(ls)
	require.NoError(t, err)
	n := 0
	prev := int64(-1 << 62)
	for _, p := range partitionsOf(db) {
		q, err := db.newQuerier(-1<<62, 1<<62)
		require.NoError(t, err)
		chunks, err := q.chunks(context.Background(), []uint64{s.ref}, p*db.partMs, (p+1)*db.partMs-1, true)
		require.NoError(t, err)
		require.NoError(t, q.Close())
		for _, c := range chunks[0] {
			require.Greater(t, c.mint, prev, "chunk overlaps its predecessor")
			require.LessOrEqual(t, c.mint, c.maxt)
			require.Equal(t, p, db.partition(c.mint))
			require.Equal(t, p, db.partition(c.maxt))
			prev = c.maxt
			n++
		}
	}
	return n
}

func TestOutOfOrderRejectedWithoutWindow(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	x, y := lbls("__name__", "x"), lbls("__name__", "y")
	mustAppend(t, db, x, floatRange(100, 200, 10)...)

	app := db.AppenderV2(context.Background())
	require.NoError(t, appendSmp(app, x, smp{T: 300, F: 30}, storage.AppendV2Options{}))
	require.ErrorIs(t, appendSmp(app, x, smp{T: 150, F: 1}, storage.AppendV2Options{}), storage.ErrOutOfOrderSample)
	require.ErrorIs(t, appendSmp(app, x, smp{T: 250, F: 1}, storage.AppendV2Options{}), storage.ErrOutOfOrderSample,
		"older than a sample buffered in the same appender")
	require.ErrorIs(t, appendSmp(app, x, smp{T: 300, F: 31}, storage.AppendV2Options{}), storage.ErrDuplicateSampleForTimestamp)
	require.NoError(t, appendSmp(app, x, smp{T: 300, F: 30}, storage.AppendV2Options{}), "same value: ignored")
	require.NoError(t, appendSmp(app, x, smp{T: 400, F: 40}, storage.AppendV2Options{}))
	require.NoError(t, appendSmp(app, y, smp{T: 50, F: 5}, storage.AppendV2Options{}))
	require.NoError(t, app.Commit())

	requireSamples(t, append(floatRange(100, 200, 10), smp{T: 300, F: 30}, smp{T: 400, F: 40}), seriesSamples(t, db, x))
	requireSamples(t, []smp{{T: 50, F: 5}}, seriesSamples(t, db, y))
	require.EqualValues(t, 2, db.Stats().RejectedOutOfOrder.Load())
	require.EqualValues(t, 1, db.Stats().RejectedDuplicate.Load())

	// The committed newest sample is checked too.
	require.ErrorIs(t, appendAll(t, db, x, smp{T: 400, F: 41})[0], storage.ErrDuplicateSampleForTimestamp)
	require.NoError(t, appendAll(t, db, x, smp{T: 400, F: 40})[0])
	require.ErrorIs(t, appendAll(t, db, x, smp{T: 399, F: 1})[0], storage.ErrOutOfOrderSample)
	requireSamples(t, append(floatRange(100, 200, 10), smp{T: 300, F: 30}, smp{T: 400, F: 40}), seriesSamples(t, db, x))
}

func TestOutOfOrderWithinWindow(t *testing.T) {
	// The chunk counts below are the cuts' own.
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: 3 * time.Hour, noMerge: true})
	m := newModel()
	x := lbls("__name__", "x")
	add := func(samples ...smp) {
		t.Helper()
		mustAppend(t, db, x, samples...)
		for _, s := range samples {
			m.add(x, s)
		}
		requireSamples(t, m.series[x.String()], seriesSamples(t, db, x))
		requireChunksDisjoint(t, db, x)
	}
	// In order: every 10s over [2h+10m, 4h]: partitions 2 and 3, several chunks each.
	add(floatRange(2*hourMs+10*minMs, 4*hourMs, 10_000)...)
	chunksBefore := requireChunksDisjoint(t, db, x)
	require.Greater(t, chunksBefore, 6)

	add(smp{T: 4*hourMs - 5_000, F: -1})                                    // into the head chunk
	add(smp{T: 4*hourMs + 10_000, F: 7})                                    // in order again after the head was rewritten
	add(smp{T: 3*hourMs + 5_005, F: -2})                                    // into an older closed chunk
	add(smp{T: 2*hourMs + 30*minMs + 5_000, F: -3})                         // into an older partition
	add(smp{T: 2*hourMs + minMs, F: -4})                                    // before the partition's first chunk
	add(smp{T: hourMs + 30*minMs, F: -5})                                   // into a partition that had no data
	add(smp{T: hourMs + 20*minMs, F: -6}, smp{T: hourMs + 40*minMs, F: -7}) // around it
	require.Equal(t, []int64{1, 2, 3, 4}, partitionsOf(db))

	// Many samples into one closed chunk force it to be split.
	var many []smp
	for tt := 3*hourMs + 20*minMs + 5_000; tt < 3*hourMs+40*minMs; tt += 10_000 {
		many = append(many, smp{T: tt, F: float64(-tt)})
	}
	add(many...)
	// Unsorted samples of one commit, inside and outside chunks, in two partitions.
	add(smp{T: 3*hourMs + 50*minMs + 1, F: 1}, smp{T: 2*hourMs + 50*minMs + 1, F: 2}, smp{T: 3*hourMs + 1, F: 3},
		smp{T: 4*hourMs + 20_000, F: 4}, smp{T: 2*hourMs + 1, F: 5})

	// Same timestamp, same value: ignored, both for the newest sample and an older one.
	before := db.Stats().RejectedDuplicate.Load()
	add(smp{T: 4*hourMs + 20_000, F: 4}, smp{T: 3*hourMs + 5_005, F: -2}, smp{T: 3 * hourMs, F: float64(3*hourMs) / 10})
	require.Equal(t, before, db.Stats().RejectedDuplicate.Load())
	// Same timestamp, other value: the newest sample is refused at once; an older one is
	// dropped at commit (as Prometheus's out-of-order head does) and counted.
	errs := appendAll(t, db, x, smp{T: 4*hourMs + 20_000, F: 5}, smp{T: 3 * hourMs, F: 1})
	require.ErrorIs(t, errs[0], storage.ErrDuplicateSampleForTimestamp)
	require.NoError(t, errs[1])
	require.Equal(t, before+2, db.Stats().RejectedDuplicate.Load())
	requireSamples(t, m.series[x.String()], seriesSamples(t, db, x), "the first value stays")

	// Outside the window: max time is 4h+20s, so anything before 1h+20s is too old.
	errs = appendAll(t, db, x, smp{T: hourMs + 19_999, F: 1}, smp{T: 0, F: 1}, smp{T: hourMs + 20_000, F: 9})
	require.ErrorIs(t, errs[0], storage.ErrTooOldSample)
	require.ErrorIs(t, errs[1], storage.ErrTooOldSample)
	require.NoError(t, errs[2])
	m.add(x, smp{T: hourMs + 20_000, F: 9})
	// The window is measured from the newest sample of the database, not of the series.
	y := lbls("__name__", "y")
	mustAppend(t, db, y, smp{T: 10 * hourMs, F: 1})
	m.add(y, smp{T: 10 * hourMs, F: 1})
	require.ErrorIs(t, appendAll(t, db, x, smp{T: 4 * hourMs, F: 1})[0], storage.ErrTooOldSample)
	require.NoError(t, appendAll(t, db, x, smp{T: 7*hourMs + 1, F: 1})[0], "in order for x")
	m.add(x, smp{T: 7*hourMs + 1, F: 1})
	// RejectOutOfOrder refuses what the window would accept.
	app := db.AppenderV2(context.Background())
	require.ErrorIs(t, appendSmp(app, y, smp{T: 10*hourMs - 1}, storage.AppendV2Options{RejectOutOfOrder: true}), storage.ErrOutOfOrderSample)
	require.NoError(t, app.Commit())

	requireSamples(t, m.series[x.String()], seriesSamples(t, db, x))
	requireSamples(t, m.series[y.String()], seriesSamples(t, db, y))
	require.Positive(t, db.Stats().SamplesOutOfOrder.Load())
}

func TestOutOfOrderNewSeriesInOneAppender(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: time.Hour})
	x := lbls("__name__", "x")
	errs := appendAll(t, db, x, smp{T: 5000, F: 5}, smp{T: 4000, F: 4}, smp{T: 6000, F: 6}, smp{T: 4500, F: 4.5}, smp{T: 4000, F: 4})
	for _, err := range errs {
		require.NoError(t, err)
	}
	requireSamples(t, []smp{{T: 4000, F: 4}, {T: 4500, F: 4.5}, {T: 5000, F: 5}, {T: 6000, F: 6}}, seriesSamples(t, db, x))
}

func TestRetentionTooOld(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, Retention: 2 * time.Hour})
	mustAppend(t, db, lbls("__name__", "a"), smp{T: 10 * hourMs, F: 1})
	// A new series, so no out-of-order check applies: only retention.
	errs := appendAll(t, db, lbls("__name__", "b"), smp{T: 8*hourMs - 1, F: 1}, smp{T: 8 * hourMs, F: 2})
	require.ErrorIs(t, errs[0], storage.ErrTooOldSample)
	require.NoError(t, errs[1])
	requireSamples(t, []smp{{T: 8 * hourMs, F: 2}}, seriesSamples(t, db, lbls("__name__", "b")))
	require.EqualValues(t, 1, db.Stats().RejectedTooOld.Load())
}

// Two appenders race on one series: the first validates an older sample, the second commits a
// newer one, then the first commits.
func TestRacingAppenders(t *testing.T) {
	for _, window := range []time.Duration{0, time.Hour} {
		t.Run(window.String(), func(t *testing.T) {
			db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: window})
			x := lbls("__name__", "x")
			mustAppend(t, db, x, smp{T: 100, F: 1})

			a1 := db.AppenderV2(context.Background())
			require.NoError(t, appendSmp(a1, x, smp{T: 150, F: 1.5}, storage.AppendV2Options{}))
			require.NoError(t, appendSmp(a1, x, smp{T: 300, F: 3}, storage.AppendV2Options{}))
			a2 := db.AppenderV2(context.Background())
			require.NoError(t, appendSmp(a2, x, smp{T: 200, F: 2}, storage.AppendV2Options{}))
			require.NoError(t, appendSmp(a2, x, smp{T: 300, F: 3}, storage.AppendV2Options{}))
			require.NoError(t, a2.Commit())
			if window == 0 {
				// 150 is now out of order and there is no window: the rest is stored and the
				// commit says what it refused.
				require.ErrorIs(t, a1.Commit(), storage.ErrOutOfOrderSample)
			} else {
				require.NoError(t, a1.Commit())
			}

			want := []smp{{T: 100, F: 1}, {T: 200, F: 2}, {T: 300, F: 3}}
			if window > 0 {
				want = []smp{{T: 100, F: 1}, {T: 150, F: 1.5}, {T: 200, F: 2}, {T: 300, F: 3}}
			}
			requireSamples(t, want, seriesSamples(t, db, x))
			// The series goes on in order.
			mustAppend(t, db, x, smp{T: 400, F: 4})
			requireSamples(t, append(want, smp{T: 400, F: 4}), seriesSamples(t, db, x))
		})
	}
}

// A sample admitted by Append that another commit pushes out of the window before its own
// Commit is not stored; the rest of the batch is, and Commit returns an error naming the refused
// sample rather than acknowledging it (Prometheus's head drops it silently).
func TestSampleTooOldByCommit(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: time.Hour})
	x, y := lbls("__name__", "x"), lbls("__name__", "y")
	mustAppend(t, db, x, smp{T: 2 * hourMs, F: 1})
	a1 := db.AppenderV2(context.Background())
	require.NoError(t, appendSmp(a1, x, smp{T: hourMs + 1, F: 2}, storage.AppendV2Options{}), "inside the window")
	mustAppend(t, db, y, smp{T: 3 * hourMs, F: 1})
	before := db.Stats().RejectedTooOld.Load()
	err := a1.Commit()
	require.ErrorIs(t, err, storage.ErrTooOldSample, "the commit says what it refused instead of acknowledging it")
	require.ErrorContains(t, err, "1 samples refused at commit")
	requireSamples(t, []smp{{T: 2 * hourMs, F: 1}}, seriesSamples(t, db, x))
	require.Equal(t, before+1, db.Stats().RejectedTooOld.Load())
}
