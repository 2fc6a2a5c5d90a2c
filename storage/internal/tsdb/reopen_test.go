package tsdb

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetadataAndExemplars(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour})
	reqs := lbls("__name__", "http_requests_total", "job", "api")
	reqs2 := lbls("__name__", "http_requests_total", "job", "web")
	bucket := lbls("__name__", "latency_seconds_bucket", "le", "0.5")
	counterMeta := metadata.Metadata{Type: model.MetricTypeCounter, Unit: "requests", Help: "Requests served."}
	histMeta := metadata.Metadata{Type: model.MetricTypeHistogram, Unit: "seconds", Help: "Latency."}
	ex := func(trace string, v float64, ts int64) exemplar.Exemplar {
		return exemplar.Exemplar{Labels: lbls("trace_id", trace), Value: v, Ts: ts, HasTs: true}
	}

	app := db.AppenderV2(context.Background())
	_, err := app.Append(0, reqs, 0, 1000, 1, nil, nil, storage.AppendV2Options{
		Metadata: counterMeta, Exemplars: []exemplar.Exemplar{ex("a", 1, 1000)}})
	require.NoError(t, err)
	_, err = app.Append(0, reqs, 0, 2*hourMs, 2, nil, nil, storage.AppendV2Options{
		Metadata: counterMeta, Exemplars: []exemplar.Exemplar{ex("b", 2, 2*hourMs-10), ex("c", 3, 2*hourMs)}})
	require.NoError(t, err)
	_, err = app.Append(0, reqs2, 0, 1500, 5, nil, nil, storage.AppendV2Options{
		Exemplars: []exemplar.Exemplar{ex("d", 5, 1500)}})
	require.NoError(t, err)
	// The family name comes from the option, not from the series name.
	_, err = app.Append(0, bucket, 0, 1000, 3, nil, nil, storage.AppendV2Options{
		Metadata: histMeta, MetricFamilyName: "latency_seconds"})
	require.NoError(t, err)
	// An exemplar with labels over the limit is a partial error; the sample is kept.
	long := exemplar.Exemplar{Labels: lbls("trace_id", string(make([]byte, exemplar.ExemplarMaxLabelSetLength+1))), Value: 1, Ts: 3000, HasTs: true}
	_, err = app.Append(0, reqs2, 0, 3000, 6, nil, nil, storage.AppendV2Options{Exemplars: []exemplar.Exemplar{long}})
	var partial *storage.AppendPartialError
	require.ErrorAs(t, err, &partial)
	require.Len(t, partial.ExemplarErrors, 1)
	require.ErrorIs(t, partial.ExemplarErrors[0].Err, storage.ErrExemplarLabelLength)
	require.NoError(t, app.Commit())
	// An exemplar whose sample was refused is not stored.
	app = db.AppenderV2(context.Background())
	_, err = app.Append(0, lbls("__name__", "refused"), 0, 1000, 1, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	_, err = app.Append(0, lbls("__name__", "refused"), 0, 999, 1, nil, nil, storage.AppendV2Options{Exemplars: []exemplar.Exemplar{ex("z", 1, 999)}})
	require.ErrorIs(t, err, storage.ErrOutOfOrderSample)
	require.NoError(t, app.Commit())

	check := func(db *DB) {
		t.Helper()
		require.Equal(t, map[string]metadata.Metadata{"http_requests_total": counterMeta, "latency_seconds": histMeta}, db.Metadata(""))
		require.Equal(t, map[string]metadata.Metadata{"latency_seconds": histMeta}, db.Metadata("latency_seconds"))
		require.Empty(t, db.Metadata("latency_seconds_bucket"))

		eqr, err := db.ExemplarQuerier(context.Background())
		require.NoError(t, err)
		res, err := eqr.Select(0, 3*hourMs, []*labels.Matcher{eq("__name__", "http_requests_total")})
		require.NoError(t, err)
		require.Equal(t, []exemplar.QueryResult{
			{SeriesLabels: reqs, Exemplars: []exemplar.Exemplar{ex("a", 1, 1000), ex("b", 2, 2*hourMs-10), ex("c", 3, 2*hourMs)}},
			{SeriesLabels: reqs2, Exemplars: []exemplar.Exemplar{ex("d", 5, 1500)}},
		}, res)
		// Time range (inclusive) and matchers; several matcher sets are a union.
		res, err = eqr.Select(1000, 2*hourMs-10, []*labels.Matcher{eq("job", "api")})
		require.NoError(t, err)
		require.Equal(t, []exemplar.QueryResult{
			{SeriesLabels: reqs, Exemplars: []exemplar.Exemplar{ex("a", 1, 1000), ex("b", 2, 2*hourMs-10)}},
		}, res)
		res, err = eqr.Select(1001, 1500, []*labels.Matcher{eq("job", "api")}, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "job", "w.*")})
		require.NoError(t, err)
		require.Equal(t, []exemplar.QueryResult{{SeriesLabels: reqs2, Exemplars: []exemplar.Exemplar{ex("d", 5, 1500)}}}, res)
		res, err = eqr.Select(0, 3*hourMs, []*labels.Matcher{eq("__name__", "refused")})
		require.NoError(t, err)
		require.Empty(t, res)
	}
	check(db)
	db = reopen(t, db, fs)
	check(db)
	// Unchanged metadata after reopen is known, changed metadata replaces it.
	newMeta := counterMeta
	newMeta.Help = "Requests."
	app = db.AppenderV2(context.Background())
	_, err = app.Append(0, reqs, 0, 3*hourMs, 3, nil, nil, storage.AppendV2Options{Metadata: newMeta})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	db = reopen(t, db, fs)
	require.Equal(t, newMeta, db.Metadata("http_requests_total")["http_requests_total"])
}

// The Appender documents that an exemplar without a timestamp takes its sample's.
func TestExemplarWithoutTimestamp(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	ls := lbls("__name__", "x")
	app := db.AppenderV2(context.Background())
	_, err := app.Append(0, ls, 0, 5*hourMs, 1, nil, nil, storage.AppendV2Options{
		Exemplars: []exemplar.Exemplar{{Labels: lbls("trace_id", "t"), Value: 1}}})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	eqr, err := db.ExemplarQuerier(context.Background())
	require.NoError(t, err)
	res, err := eqr.Select(5*hourMs, 5*hourMs, []*labels.Matcher{eq("__name__", "x")})
	require.NoError(t, err)
	require.Equal(t, []exemplar.QueryResult{{SeriesLabels: ls, Exemplars: []exemplar.Exemplar{
		{Labels: lbls("trace_id", "t"), Value: 1, Ts: 5 * hourMs, HasTs: true}}}}, res)
	require.Equal(t, 5*hourMs, db.MinTime(), "the exemplar made no partition of its own")

	// Unbounded ranges, as API clients send them, find it too (end+1 must not overflow).
	res2, err := eqr.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{eq("__name__", "x")})
	require.NoError(t, err)
	require.Equal(t, res, res2)
}

func TestReopen(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour})
	m := newModel()
	refs := map[string]storage.SeriesRef{}
	for i, name := range []string{"a", "b", "c"} {
		ls := lbls("__name__", name)
		samples := floatRange(int64(i)*minMs, 2*hourMs+int64(i)*minMs, 15_000+int64(i)*1000)
		app := db.AppenderV2(context.Background())
		for _, s := range samples {
			ref, err := app.Append(0, ls, 0, s.T, s.F, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
			refs[name] = ref
			m.add(ls, s)
		}
		require.NoError(t, app.Commit())
	}
	maxT, minT := db.MaxTime(), db.MinTime()
	db = reopen(t, db, fs)
	require.Equal(t, maxT, db.MaxTime())
	require.Equal(t, minT, db.MinTime())
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	requireSameSeries(t, m.query(-1<<62, 1<<62), selectAll(t, db, -1<<62, 1<<62, nil, all))

	// The newest sample of each series is known: older ones are out of order, equal ones
	// duplicates, and newer ones continue the last chunk.
	a := lbls("__name__", "a")
	last, _ := m.newest(a)
	errs := appendAll(t, db, a, smp{T: last.T - 1, F: 1}, smp{T: last.T, F: last.F + 1}, smp{T: last.T, F: last.F})
	require.ErrorIs(t, errs[0], storage.ErrOutOfOrderSample)
	require.ErrorIs(t, errs[1], storage.ErrDuplicateSampleForTimestamp)
	require.NoError(t, errs[2])
	chunksBefore := chunkCount(t, db, a)
	next := smp{T: last.T + 1000, F: 7}
	mustAppend(t, db, a, next)
	m.add(a, next)
	require.Equal(t, chunksBefore, chunkCount(t, db, a), "the last chunk is continued")

	// Refs: old series keep theirs, new ones get fresh ones.
	app := db.AppenderV2(context.Background())
	ref, err := app.Append(0, lbls("__name__", "b"), 0, 3*hourMs, 1, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	require.Equal(t, refs["b"], ref)
	m.add(lbls("__name__", "b"), smp{T: 3 * hourMs, F: 1})
	ref, err = app.Append(0, lbls("__name__", "d"), 0, 3*hourMs, 1, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	m.add(lbls("__name__", "d"), smp{T: 3 * hourMs, F: 1})
	for name, old := range refs {
		require.NotEqual(t, old, ref, "new series d reuses the ref of %s", name)
	}
	// The caller's cached ref is honoured.
	_, err = app.Append(refs["c"], lbls("__name__", "c"), 0, 3*hourMs, 2, nil, nil, storage.AppendV2Options{})
	require.NoError(t, err)
	m.add(lbls("__name__", "c"), smp{T: 3 * hourMs, F: 2})
	require.NoError(t, app.Commit())

	db = reopen(t, db, fs)
	requireSameSeries(t, m.query(-1<<62, 1<<62, all), selectAll(t, db, -1<<62, 1<<62, nil, all))
	require.Equal(t, 3*hourMs, db.MaxTime())
}

// A clean close merges the superseded head copies that checkpoints left in Pebble's upper
// levels (compactAtClose): the stopped store holds less than before its close, nothing in level
// 0, and reads back the same samples.
func TestCloseCompacts(t *testing.T) {
	dir := t.TempDir()
	opts := Options{CheckpointInterval: time.Hour, RetentionInterval: time.Hour}
	db, err := Open(dir, opts)
	require.NoError(t, err)
	want := map[string][]smp{}
	for r := range 10 {
		for i := range 200 {
			ls := lbls("__name__", "m", "i", fmt.Sprint(i))
			s := smp{T: int64(r) * 1000, F: float64(i + r)}
			mustAppend(t, db, ls, s)
			want[ls.String()] = append(want[ls.String()], s)
		}
		// Each checkpoint writes a new copy of every head; each flush makes a level-0 table.
		db.writeMu.Lock()
		require.NoError(t, db.checkpointLocked(headsQuick))
		db.writeMu.Unlock()
		require.NoError(t, db.pdb.Flush())
	}
	tables := func(db *DB) (l0 int64, size int64) {
		m := db.pdb.Metrics()
		for _, l := range m.Levels {
			size += l.TablesSize
		}
		return m.Levels[0].TablesCount, size
	}
	l0, before := tables(db)
	require.Positive(t, l0, "the checkpoints' copies are in level 0 before the close")
	require.NoError(t, db.Close())

	db, err = Open(dir, opts)
	require.NoError(t, err)
	defer db.Close()
	l0, after := tables(db)
	assert.Zero(t, l0, "level 0 was merged at close")
	assert.Less(t, after, before, "the superseded copies are gone")
	requireSameSeries(t, want, selectAll(t, db, 0, 1<<40, nil, eq("__name__", "m")), "after the compacting close")
}
