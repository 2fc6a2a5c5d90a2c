package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// Appenders on shared and own series race with queriers, label lookups, head collection and
// retention; every acknowledged sample must be there exactly once, in order.
func TestConcurrentAppendAndQuery(t *testing.T) {
	// The window (48h) is wider than the whole span written (~29h), however far apart the
	// writers drift on a loaded machine, so that no sample admitted by Append becomes too old
	// before its Commit (it would be dropped: see TestSampleTooOldByCommit).
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: 48 * time.Hour, Retention: 72 * time.Hour})
	ctx := context.Background()
	const (
		writers = 4
		commits = 80
		shared  = 6
	)
	models := make([]*refModel, writers)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range writers {
		models[g] = newModel()
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 5))
			for i := range commits {
				app := db.AppenderV2(ctx)
				var pending []struct {
					ls labels.Labels
					s  smp
				}
				for j := range 20 {
					var ls labels.Labels
					if j == 0 {
						// A new series per commit: churn that head collection removes
						// once it is idle, possibly between its Append and Commit.
						ls = lbls("__name__", "churn", "g", fmt.Sprint(g), "i", fmt.Sprint(i))
					} else if rng.IntN(2) == 0 {
						ls = lbls("__name__", "shared", "k", fmt.Sprint(rng.IntN(shared)))
					} else {
						ls = lbls("__name__", "own", "g", fmt.Sprint(g), "k", fmt.Sprint(rng.IntN(3)))
					}
					// Times unique per writer; writers drift apart, so shared series see
					// out-of-order samples from each other.
					tt := (int64(i)*20+rng.Int64N(20))*writers*16000 + int64(g)
					s := smp{T: tt, F: float64(tt)}
					err := appendSmp(app, ls, s, storage.AppendV2Options{})
					if err != nil {
						errs <- fmt.Errorf("writer %d: append %s %v: %w", g, ls, s, err)
						return
					}
					if err == nil {
						pending = append(pending, struct {
							ls labels.Labels
							s  smp
						}{ls, s})
					}
				}
				if err := app.Commit(); err != nil {
					errs <- err
					return
				}
				for _, p := range pending {
					models[g].add(p.ls, p.s)
				}
			}
		}()
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 6))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := checkSorted(ctx, db, rng); err != nil {
					errs <- err
					return
				}
				if r == 0 {
					db.collectHead()
				} else if err := db.ApplyRetention(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	want := newModel()
	for _, m := range models {
		for k, list := range m.series {
			for _, s := range list {
				require.True(t, want.add(m.lsets[k], s), "two writers acknowledged %s %v", k, s)
			}
		}
	}
	requireSameSeries(t, want.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, allSeries))
	require.Positive(t, db.Stats().SamplesOutOfOrder.Load(), "writers should have raced on shared series")
	require.Positive(t, db.Stats().HeadSeriesCollected.Load(), "head collection should have run on churned series")
}

// checkSorted runs a random Select and label queries and checks that series are sorted and
// their samples strictly increasing.
func checkSorted(ctx context.Context, db *DB, rng *rand.Rand) error {
	mint := rng.Int64N(max(db.MaxTime(), 0) + 1)
	q, err := db.Querier(mint, mint+rng.Int64N(4*hourMs))
	if err != nil {
		return err
	}
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "shared|own|churn"))
	var prev labels.Labels
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		if !prev.IsEmpty() && labels.Compare(prev, s.Labels()) >= 0 {
			return fmt.Errorf("series out of order: %s, %s", prev, s.Labels())
		}
		prev = s.Labels()
		it = s.Iterator(it)
		last := int64(-1 << 62)
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			if ts <= last || v != float64(ts) {
				return fmt.Errorf("%s: sample %d=%v after %d", s.Labels(), ts, v, last)
			}
			last = ts
		}
		if err := it.Err(); err != nil {
			return err
		}
	}
	if err := ss.Err(); err != nil {
		return err
	}
	if _, _, err := q.LabelValues(ctx, "k", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "shared")); err != nil {
		return err
	}
	_, _, err = q.LabelNames(ctx, nil)
	return err
}

// Close while appenders and queriers are busy returns cleanly, and every operation after it
// fails with ErrClosed.
func TestCloseWhileBusy(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour})
	ctx := context.Background()
	mustAppend(t, db, lbls("__name__", "x"), smp{T: 0, F: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	acked := make([]int, 3)
	// running is done when every writer and reader has done one operation (or given up), so
	// Close below meets them busy rather than not yet started.
	var running sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			defer once.Do(running.Done)
			for i := 1; ; i++ {
				app := db.AppenderV2(ctx)
				_, err := app.Append(0, lbls("__name__", "w", "g", fmt.Sprint(g)), 0, int64(i), float64(i), nil, nil, storage.AppendV2Options{})
				if err == nil {
					err = app.Commit()
				}
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					}
					return
				}
				acked[g] = i
				once.Do(running.Done)
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		running.Add(1)
		go func() {
			defer wg.Done()
			var once sync.Once
			defer once.Do(running.Done)
			for {
				q, err := db.Querier(0, 1<<40)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					}
					return
				}
				ss := q.Select(ctx, true, nil, allSeries)
				for ss.Next() {
					it := ss.At().Iterator(nil)
					for it.Next() != chunkenc.ValNone {
					}
					if err := it.Err(); err != nil {
						errs <- err
					}
				}
				if err := errors.Join(ss.Err(), q.Close()); err != nil {
					errs <- err
					return
				}
				once.Do(running.Done)
			}
		}()
	}
	running.Wait()
	// A querier open across Close keeps working until closed.
	q, err := db.Querier(0, 1<<40)
	require.NoError(t, err)
	closed := make(chan error)
	go func() { closed <- db.Close() }()
	// Wait until Close has begun (it marks the DB closed first, then waits for open queriers), so
	// the query below runs while Close is waiting for it.
	for !db.closing() {
		runtime.Gosched()
	}
	ss := q.Select(ctx, true, nil, eq("__name__", "x"))
	require.True(t, ss.Next())
	requireSamples(t, []smp{{T: 0, F: 1}}, readIter(t, ss.At().Iterator(nil)))
	require.False(t, ss.Next())
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a querier was open", err)
	default:
	}
	require.NoError(t, q.Close())
	require.NoError(t, <-closed)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	_, err = db.Querier(0, 1)
	require.ErrorIs(t, err, ErrClosed)
	_, err = db.ChunkQuerier(0, 1)
	require.ErrorIs(t, err, ErrClosed)
	app := db.AppenderV2(ctx)
	_, err = app.Append(0, lbls("__name__", "x"), 0, 5, 1, nil, nil, storage.AppendV2Options{})
	require.ErrorIs(t, err, ErrClosed)
	eqr, err := db.ExemplarQuerier(ctx)
	if err == nil {
		_, err = eqr.Select(0, 1, []*labels.Matcher{allSeries})
	}
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, db.Close(), "a second Close is harmless")

	// Everything acknowledged is there after reopen.
	db = openOn(t, fs, db.opts)
	for g, n := range acked {
		got := seriesSamples(t, db, lbls("__name__", "w", "g", fmt.Sprint(g)))
		require.GreaterOrEqual(t, len(got), n)
		requireSamples(t, floatsUpTo(len(got)), got)
	}
}

func floatsUpTo(n int) []smp {
	out := []smp{}
	for i := 1; i <= n; i++ {
		out = append(out, smp{T: int64(i), F: float64(i)})
	}
	return out
}

// closing tells whether Close has begun.
func (db *DB) closing() bool {
	db.lifeMu.Lock()
	defer db.lifeMu.Unlock()
	return db.closed
}
