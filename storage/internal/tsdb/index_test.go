package tsdb

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// indexFixture stores random series over two one-hour partitions: some only in the first,
// some only in the second, some in both. Label values come from small domains and some labels
// are missing, so that matchers select interesting subsets.
func indexFixture(t *testing.T, seed uint64) (*DB, *refModel) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	m := newModel()
	addIndexSeries(t, db, m, rand.New(rand.NewPCG(seed, 7)), 60)
	return db, m
}

// legacyIndexFixture is indexFixture with the first partition's index rewritten as versions
// before posting lists wrote it (`i` keys, one per series and label), reopened, and then more
// series added to both partitions, which this version lists: the first partition holds both
// kinds of index entries, often for the same label pair.
func legacyIndexFixture(t *testing.T, seed uint64) (*DB, *refModel) {
	db, m := indexFixture(t, seed)
	prefix := postingListPartPrefix(nil, 0)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	require.NoError(t, err)
	b := db.pdb.NewBatch()
	lists := 0
	for it.First(); it.Valid(); it.Next() {
		name, rest, err := getString(it.Key()[len(prefix):])
		require.NoError(t, err)
		value, rest, err := getString(rest)
		require.NoError(t, err)
		require.Empty(t, rest)
		refs, err := decodeRefLists(nil, it.Value())
		require.NoError(t, err)
		for _, ref := range refs {
			require.NoError(t, b.Set(putRef(postingsValuePrefix(nil, 0, name, value), ref), nil, nil))
		}
		require.NoError(t, b.Delete(slices.Clone(it.Key()), nil))
		lists++
	}
	require.NoError(t, it.Close())
	require.NoError(t, b.Commit(pebble.Sync))
	require.Greater(t, lists, 10)
	db = reopen(t, db, db.opts.FS)
	require.Equal(t, int64(0), db.legacyIndexUpTo, "the first partition has old index keys")
	addIndexSeries(t, db, m, rand.New(rand.NewPCG(seed, 8)), 30)
	return db, m
}

// addIndexSeries adds n random series new to m (see indexFixture) to db and m.
func addIndexSeries(t *testing.T, db *DB, m *refModel, rng *rand.Rand, n int) {
	domains := []struct {
		name   string
		values []string
	}{
		{"__name__", []string{"up", "http_requests_total", "cpu", "a"}},
		{"job", []string{"a", "b", "node"}},
		{"foo", []string{"x", "y", "a", "xy"}},
		{"env", []string{"prod", "dev"}},
		{"zone", []string{"eu-1", "us-1", "b"}},
	}
	for added := 0; added < n; {
		var kv []string
		for i, d := range domains {
			if i == 0 || rng.IntN(3) > 0 { // __name__ always; others missing a third of the time
				kv = append(kv, d.name, d.values[rng.IntN(len(d.values))])
			}
		}
		ls := labels.FromStrings(kv...)
		if _, seen := m.lsets[ls.String()]; seen {
			continue
		}
		added++
		var samples []smp
		switch rng.IntN(3) {
		case 0:
			samples = floatRange(10*minMs, 20*minMs, minMs)
		case 1:
			samples = floatRange(hourMs+10*minMs, hourMs+20*minMs, minMs)
		default:
			samples = floatRange(50*minMs, hourMs+10*minMs, minMs)
		}
		mustAppend(t, db, ls, samples...)
		for _, s := range samples {
			m.add(ls, s)
		}
	}
}

// indexFixtures are the databases the index tests run on.
var indexFixtures = []struct {
	name string
	open func(*testing.T, uint64) (*DB, *refModel)
}{
	{"lists", indexFixture},
	{"legacy", legacyIndexFixture},
}

var matcherValues = []string{"", "x", "a", "b", "up", "|a", "a|", ".+", ".*", "a|b", "x|y", "x.*", "(?i)X", "u.*|cpu", "nope", "prod|dev|", "eu-.*", "node"}

func randomMatcher(rng *rand.Rand) *labels.Matcher {
	names := []string{"__name__", "job", "foo", "env", "zone", "missing"}
	types := []labels.MatchType{labels.MatchEqual, labels.MatchNotEqual, labels.MatchRegexp, labels.MatchNotRegexp}
	return labels.MustNewMatcher(types[rng.IntN(len(types))], names[rng.IntN(len(names))], matcherValues[rng.IntN(len(matcherValues))])
}

func TestSelectMatchersAgainstBruteForce(t *testing.T) {
	for _, f := range indexFixtures {
		t.Run(f.name, func(t *testing.T) { testSelectMatchers(t, f.open) })
	}
}

func testSelectMatchers(t *testing.T, open func(*testing.T, uint64) (*DB, *refModel)) {
	db, m := open(t, 1)
	ranges := [][2]int64{{0, 2 * hourMs}, {0, hourMs - 1}, {hourMs, 2 * hourMs}, {15 * minMs, hourMs + 15*minMs}}

	// The empty-string semantics, explicitly.
	explicit := [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "foo", "")},
		{labels.MustNewMatcher(labels.MatchNotEqual, "foo", "x")},
		{labels.MustNewMatcher(labels.MatchRegexp, "foo", "|a")},
		{labels.MustNewMatcher(labels.MatchNotRegexp, "foo", ".+")},
		{labels.MustNewMatcher(labels.MatchNotEqual, "foo", "")},
		{labels.MustNewMatcher(labels.MatchRegexp, "foo", ".+")},
		{labels.MustNewMatcher(labels.MatchRegexp, "foo", "x|y")},
		{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "up|cpu")},
		{labels.MustNewMatcher(labels.MatchRegexp, "__name__", "http_.*")},
		{eq("__name__", "up"), labels.MustNewMatcher(labels.MatchEqual, "job", "")},
		{eq("__name__", "cpu"), labels.MustNewMatcher(labels.MatchNotRegexp, "job", "a|b")},
	}
	for _, ms := range explicit {
		for _, r := range ranges {
			want := m.query(r[0], r[1], ms...)
			requireSameSeries(t, want, selectAll(t, db, r[0], r[1], nil, ms...), ms, r)
		}
	}
	// The explicit empty-string cases select series lacking the label, and not all series.
	want := m.query(0, 2*hourMs, explicit[0]...)
	require.NotEmpty(t, want)
	require.Less(t, len(want), len(m.series))

	rng := rand.New(rand.NewPCG(3, 4))
	nonEmpty := 0
	for i := range 400 {
		ms := make([]*labels.Matcher, 1+rng.IntN(3))
		for j := range ms {
			ms[j] = randomMatcher(rng)
		}
		r := ranges[i%len(ranges)]
		want := m.query(r[0], r[1], ms...)
		if len(want) > 0 {
			nonEmpty++
		}
		requireSameSeries(t, want, selectAll(t, db, r[0], r[1], nil, ms...), ms, r)
	}
	require.Greater(t, nonEmpty, 100, "the random matchers should select something often")
}

// wantNames and wantValues are the brute-force answers for a querier whose range covers
// exactly the given partitions (the index is per partition).
func indexedIn(m *refModel, mint, maxt int64) []labels.Labels {
	var out []labels.Labels
	for k, list := range m.series {
		for _, s := range list {
			if s.T/hourMs >= mint/hourMs && s.T/hourMs <= maxt/hourMs {
				out = append(out, m.lsets[k])
				break
			}
		}
	}
	return out
}

func TestLabelNamesAndValues(t *testing.T) {
	for _, f := range indexFixtures {
		t.Run(f.name, func(t *testing.T) { testLabelNamesAndValues(t, f.open) })
	}
}

func testLabelNamesAndValues(t *testing.T, open func(*testing.T, uint64) (*DB, *refModel)) {
	db, m := open(t, 2)
	ctx := context.Background()
	// Ranges that cover one or both partitions.
	ranges := [][2]int64{{0, hourMs - 1}, {hourMs, 2*hourMs - 1}, {0, 2 * hourMs}, {30 * minMs, 30 * minMs}}
	names := []string{"__name__", "job", "foo", "env", "zone", "missing"}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 120 {
		r := ranges[i%len(ranges)]
		var ms []*labels.Matcher
		if i >= len(ranges) { // first without matchers
			for range 1 + rng.IntN(2) {
				ms = append(ms, randomMatcher(rng))
			}
		}
		wantNames, wantValues := map[string]bool{}, map[string]map[string]bool{}
		for _, ls := range indexedIn(m, r[0], r[1]) {
			if !matchesAll(ls, ms) {
				continue
			}
			ls.Range(func(l labels.Label) {
				wantNames[l.Name] = true
				if wantValues[l.Name] == nil {
					wantValues[l.Name] = map[string]bool{}
				}
				wantValues[l.Name][l.Value] = true
			})
		}
		q, err := db.Querier(r[0], r[1])
		require.NoError(t, err)
		gotNames, _, err := q.LabelNames(ctx, nil, ms...)
		require.NoError(t, err)
		require.Equal(t, sortedKeys(wantNames), gotNames, "names %v %v", r, ms)
		for _, name := range names {
			got, _, err := q.LabelValues(ctx, name, nil, ms...)
			require.NoError(t, err)
			require.Equal(t, sortedKeys(wantValues[name]), got, "values of %s %v %v", name, r, ms)
			if len(got) > 1 {
				lim, _, err := q.LabelValues(ctx, name, &storage.LabelHints{Limit: len(got) - 1}, ms...)
				require.NoError(t, err)
				require.Equal(t, got[:len(got)-1], lim, "limit")
			}
		}
		if len(gotNames) > 1 {
			lim, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: 1}, ms...)
			require.NoError(t, err)
			require.Equal(t, gotNames[:1], lim)
		}
		require.NoError(t, q.Close())
	}
	require.Less(t, len(indexedIn(m, 0, hourMs-1)), len(m.series), "some series are not in the first partition")
	require.Less(t, len(indexedIn(m, hourMs, 2*hourMs-1)), len(m.series), "some series are not in the second")

	// A label only in a series of the second partition is invisible to a first-partition querier.
	mustAppend(t, db, lbls("__name__", "late", "only_late", "v"), floats(hourMs+30*minMs)...)
	q, err := db.Querier(0, hourMs-1)
	require.NoError(t, err)
	n, _, err := q.LabelNames(ctx, nil)
	require.NoError(t, err)
	require.NotContains(t, n, "only_late")
	v, _, err := q.LabelValues(ctx, "__name__", nil)
	require.NoError(t, err)
	require.NotContains(t, v, "late")
	require.NoError(t, q.Close())
	q, err = db.Querier(hourMs, 2*hourMs)
	require.NoError(t, err)
	n, _, err = q.LabelNames(ctx, nil)
	require.NoError(t, err)
	require.Contains(t, n, "only_late")
	v, _, err = q.LabelValues(ctx, "only_late", nil, eq("__name__", "late"))
	require.NoError(t, err)
	require.Equal(t, []string{"v"}, v)
	require.NoError(t, q.Close())
}

func sortedKeys(m map[string]bool) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
