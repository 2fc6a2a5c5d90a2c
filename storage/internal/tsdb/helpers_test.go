package tsdb

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

const testDir = "db"

// openMem opens a DB on a fresh in-memory filesystem; the DB is closed at the end of the test.
func openMem(t testing.TB, o Options) (*DB, vfs.FS) {
	t.Helper()
	fs := vfs.NewMem()
	return openOn(t, fs, o), fs
}

// openOn opens the DB in testDir of fs and registers its Close (a second Close is harmless).
func openOn(t testing.TB, fs vfs.FS, o Options) *DB {
	t.Helper()
	o.FS = fs
	if o.RetentionInterval == 0 {
		o.RetentionInterval = time.Hour // background work only when a test calls it
	}
	db, err := Open(testDir, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// reopen closes db and opens the same directory again with the same options.
func reopen(t testing.TB, db *DB, fs vfs.FS) *DB {
	t.Helper()
	require.NoError(t, db.Close())
	o := db.opts
	return openOn(t, fs, o)
}

// smp is a sample as the tests see it: exactly one of F, H, FH is meaningful (as in sample).
type smp struct {
	T  int64
	F  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

func (s smp) String() string {
	switch {
	case s.FH != nil:
		return fmt.Sprintf("%d:fh%s", s.T, s.FH.String())
	case s.H != nil:
		return fmt.Sprintf("%d:h%s", s.T, s.H.String())
	}
	return fmt.Sprintf("%d:%v(%x)", s.T, s.F, math.Float64bits(s.F))
}

// equal compares values exactly: floats bit for bit, histograms with Equals (which ignores
// the counter-reset hint, which chunks may set on their own).
func (s smp) equal(o smp) bool {
	if s.T != o.T {
		return false
	}
	switch {
	case s.FH != nil:
		return o.FH != nil && s.FH.Equals(o.FH)
	case s.H != nil:
		return o.H != nil && s.H.Equals(o.H)
	}
	return o.H == nil && o.FH == nil && math.Float64bits(s.F) == math.Float64bits(o.F)
}

func requireSamples(t testing.TB, want, got []smp, msgAndArgs ...any) {
	t.Helper()
	ok := len(want) == len(got)
	for i := 0; ok && i < len(want); i++ {
		ok = want[i].equal(got[i])
	}
	if !ok {
		require.Failf(t, "samples differ", "want %v\n got %v\n%s", want, got, fmt.Sprint(msgAndArgs...))
	}
}

func floats(ts ...int64) []smp {
	out := make([]smp, len(ts))
	for i, t := range ts {
		out[i] = smp{T: t, F: float64(t) / 10}
	}
	return out
}

// floatRange returns samples at from, from+step, ... up to and including to, valued t/10.
func floatRange(from, to, step int64) []smp {
	var out []smp
	for t := from; t <= to; t += step {
		out = append(out, smp{T: t, F: float64(t) / 10})
	}
	return out
}

// trim keeps the samples in [mint, maxt].
func trim(s []smp, mint, maxt int64) []smp {
	var out []smp
	for _, x := range s {
		if x.T >= mint && x.T <= maxt {
			out = append(out, x)
		}
	}
	return out
}

func appendSmp(app storage.AppenderV2, ls labels.Labels, s smp, opts storage.AppendV2Options) error {
	_, err := app.Append(0, ls, 0, s.T, s.F, s.H, s.FH, opts)
	return err
}

// appendAll appends samples of one series in one appender, commits, and returns the error of
// each Append (nil for accepted).
func appendAll(t testing.TB, db *DB, ls labels.Labels, samples ...smp) []error {
	t.Helper()
	app := db.AppenderV2(context.Background())
	errs := make([]error, len(samples))
	for i, s := range samples {
		errs[i] = appendSmp(app, ls, s, storage.AppendV2Options{})
	}
	require.NoError(t, app.Commit())
	return errs
}

// mustAppend appends and commits samples that must all be accepted.
func mustAppend(t testing.TB, db *DB, ls labels.Labels, samples ...smp) {
	t.Helper()
	for i, err := range appendAll(t, db, ls, samples...) {
		require.NoError(t, err, "sample %v", samples[i])
	}
}

// readSeries drains a series iterator.
func readIter(t testing.TB, it chunkenc.Iterator) []smp {
	t.Helper()
	var out []smp
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		out = append(out, atIter(it, vt))
	}
	require.NoError(t, it.Err())
	return out
}

func atIter(it chunkenc.Iterator, vt chunkenc.ValueType) smp {
	switch vt {
	case chunkenc.ValHistogram:
		ts, h := it.AtHistogram(nil)
		return smp{T: ts, H: h}
	case chunkenc.ValFloatHistogram:
		ts, fh := it.AtFloatHistogram(nil)
		return smp{T: ts, FH: fh}
	}
	ts, f := it.At()
	return smp{T: ts, F: f}
}

// selectAll runs Select on a querier over [mint, maxt] and returns the samples by series
// (labels' String), checking that series come sorted by labels. A series with no sample in
// the range is left out: like Prometheus's, the querier selects series by chunk overlap, so
// a chunk that spans the range without a sample inside it yields an empty series.
func selectAll(t testing.TB, db *DB, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) map[string][]smp {
	t.Helper()
	out, _ := selectWithEmpty(t, db, mint, maxt, hints, ms...)
	return out
}

// selectStrict is selectAll that also fails on an empty series.
func selectStrict(t testing.TB, db *DB, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) map[string][]smp {
	t.Helper()
	out, empty := selectWithEmpty(t, db, mint, maxt, hints, ms...)
	require.Empty(t, empty, "series returned with no samples")
	return out
}

func selectWithEmpty(t testing.TB, db *DB, mint, maxt int64, hints *storage.SelectHints, ms ...*labels.Matcher) (map[string][]smp, []string) {
	t.Helper()
	var empty []string
	q, err := db.Querier(mint, maxt)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	ss := q.Select(context.Background(), true, hints, ms...)
	out := map[string][]smp{}
	var prev labels.Labels
	for ss.Next() {
		s := ss.At()
		if !prev.IsEmpty() {
			require.Negative(t, labels.Compare(prev, s.Labels()), "series not sorted: %s then %s", prev, s.Labels())
		}
		prev = s.Labels()
		got := readIter(t, s.Iterator(nil))
		if len(got) == 0 {
			empty = append(empty, s.Labels().String())
			continue
		}
		out[s.Labels().String()] = got
	}
	require.NoError(t, ss.Err())
	return out, empty
}

func eq(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

// refModel is the reference a DB is compared with: series (by labels' String) to sorted samples.
type refModel struct {
	series map[string][]smp
	lsets  map[string]labels.Labels
}

func newModel() *refModel {
	return &refModel{series: map[string][]smp{}, lsets: map[string]labels.Labels{}}
}

// add inserts s unless a sample exists at its timestamp; reports whether it was added.
func (m *refModel) add(ls labels.Labels, s smp) bool {
	k := ls.String()
	m.lsets[k] = ls
	list := m.series[k]
	i, found := slices.BinarySearchFunc(list, s.T, func(x smp, t int64) int { return cmp.Compare(x.T, t) })
	if found {
		return false
	}
	m.series[k] = slices.Insert(list, i, s)
	return true
}

func (m *refModel) newest(ls labels.Labels) (smp, bool) {
	list := m.series[ls.String()]
	if len(list) == 0 {
		return smp{}, false
	}
	return list[len(list)-1], true
}

func (m *refModel) at(ls labels.Labels, t int64) (smp, bool) {
	list := m.series[ls.String()]
	i, found := slices.BinarySearchFunc(list, t, func(x smp, t int64) int { return cmp.Compare(x.T, t) })
	if !found {
		return smp{}, false
	}
	return list[i], true
}

// query returns what Select over [mint, maxt] must return for ms.
func (m *refModel) query(mint, maxt int64, ms ...*labels.Matcher) map[string][]smp {
	out := map[string][]smp{}
	for k, list := range m.series {
		if !matchesAll(m.lsets[k], ms) {
			continue
		}
		if got := trim(list, mint, maxt); len(got) > 0 {
			out[k] = got
		}
	}
	return out
}

func matchesAll(ls labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func requireSameSeries(t testing.TB, want, got map[string][]smp, msgAndArgs ...any) {
	t.Helper()
	var wk, gk []string
	for k := range want {
		wk = append(wk, k)
	}
	for k := range got {
		gk = append(gk, k)
	}
	slices.Sort(wk)
	slices.Sort(gk)
	require.Equal(t, wk, gk, "series set differs %s", fmt.Sprint(msgAndArgs...))
	for _, k := range wk {
		requireSamples(t, want[k], got[k], k, " ", fmt.Sprint(msgAndArgs...))
	}
}

func lbls(kv ...string) labels.Labels { return labels.FromStrings(kv...) }

func keys(m map[string][]smp) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, " ")
}

const (
	hourMs = int64(time.Hour / time.Millisecond)
	minMs  = int64(time.Minute / time.Millisecond)
)

// partitionsOf returns the partitions that hold data.
func partitionsOf(db *DB) []int64 {
	db.partsMu.RLock()
	defer db.partsMu.RUnlock()
	return slices.Clone(db.parts)
}
