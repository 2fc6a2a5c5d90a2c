package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// pendingOfSeries returns the appender holding a pending sample of the series ref.
func pendingOfSeries(db *DB, ref storage.SeriesRef) *Appender {
	s := db.series.getByRef(uint64(ref))
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingBy
}

// The pending slot an appender takes in admit is cleared once its commit is done (publishCommit
// clears it, not prepareCommit): for samples appended in order, merged out of order, refused at
// commit, and when a commit is refused before it starts. A slot left behind would keep the
// appender (and its context) alive as long as the series gets no other sample.
func TestCommitClearsPending(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, OutOfOrderWindow: time.Hour})
	a := labels.FromStrings("__name__", "a")
	b := labels.FromStrings("__name__", "b")
	c := labels.FromStrings("__name__", "c")
	const base = int64(10 * time.Hour / time.Millisecond)

	app := db.AppenderV2(context.Background())
	refA, err := app.Append(0, a, 0, base, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	refB, err := app.Append(0, b, 0, base, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Same(t, app, pendingOfSeries(db, refA))
	require.NoError(t, app.Commit())
	require.Nil(t, pendingOfSeries(db, refA), "in order")
	require.Nil(t, pendingOfSeries(db, refB), "in order")

	// Out of order (merged) for a, and refused at commit for b: another appender commits a
	// different value at b's timestamp first.
	first := db.AppenderV2(context.Background())
	_, err = first.Append(refA, a, 0, base-1000, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	_, err = first.Append(refB, b, 0, base+1000, 2, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	second := db.AppenderV2(context.Background())
	_, err = second.Append(refB, b, 0, base+1000, 3, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Same(t, second, pendingOfSeries(db, refB), "the later appender takes the slot")
	require.NoError(t, second.Commit())
	require.Nil(t, pendingOfSeries(db, refB))
	require.Same(t, first, pendingOfSeries(db, refA))
	err = first.Commit()
	require.ErrorContains(t, err, "1 samples refused at commit")
	require.Nil(t, pendingOfSeries(db, refA), "out of order")
	require.Nil(t, pendingOfSeries(db, refB), "refused at commit")
	got := selectAll(t, db, 0, base+time.Hour.Milliseconds(), nil, eq("__name__", "a"))
	requireSamples(t, []smp{{T: base - 1000, F: 2}, {T: base, F: 1}}, got[a.String()])
	got = selectAll(t, db, 0, base+time.Hour.Milliseconds(), nil, eq("__name__", "b"))
	requireSamples(t, []smp{{T: base, F: 1}, {T: base + 1000, F: 3}}, got[b.String()])

	// A commit refused before it starts (the context ended while waiting for writeMu).
	app = db.AppenderV2(context.Background())
	refC, err := app.Append(0, c, 0, base, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.Same(t, app, pendingOfSeries(db, refC))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	app.(*Appender).ctx = ctx
	db.writeMu.Lock()
	err = app.Commit()
	db.writeMu.Unlock()
	require.Error(t, err)
	require.Nil(t, pendingOfSeries(db, refC), "refused commit")
}
