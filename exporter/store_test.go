package exporter

import (
	"context"
	"math"
	"sort"
	"sync"
	"testing"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"

	"github.com/metricstor/metricstor/storage"
)

// tsdbStore implements storage.Store over Prometheus's real TSDB until our own store is ready.
// Metadata is what committed appenders recorded, per metric family name.
type tsdbStore struct {
	*tsdb.DB
	component.StartFunc
	component.ShutdownFunc

	mu   sync.Mutex
	meta map[string][]metadata.Metadata
}

var _ storage.Store = (*tsdbStore)(nil)

func newTSDBStore(t testing.TB) *tsdbStore {
	t.Helper()
	opts := tsdb.DefaultOptions()
	db, err := tsdb.Open(t.TempDir(), promslog.NewNopLogger(), nil, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return &tsdbStore{DB: db, meta: map[string][]metadata.Metadata{}}
}

func (s *tsdbStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return &metaAppender{AppenderV2: s.DB.AppenderV2(ctx), store: s, pending: map[string]metadata.Metadata{}}
}

func (s *tsdbStore) MetricMetadata(_ context.Context, metric string) (map[string][]metadata.Metadata, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]metadata.Metadata{}
	for name, md := range s.meta {
		if metric == "" || metric == name {
			out[name] = append([]metadata.Metadata(nil), md...)
		}
	}
	return out, nil
}

// metaAppender records metadata of appended samples and publishes it on Commit.
type metaAppender struct {
	promstorage.AppenderV2
	store   *tsdbStore
	pending map[string]metadata.Metadata
}

func (a *metaAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil && opts.MetricFamilyName != "" {
		a.pending[opts.MetricFamilyName] = opts.Metadata
	}
	return ref, err
}

func (a *metaAppender) Commit() error {
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	a.store.mu.Lock()
	defer a.store.mu.Unlock()
	for name, md := range a.pending {
		known := false
		for _, m := range a.store.meta[name] {
			known = known || m == md
		}
		if !known {
			a.store.meta[name] = append(a.store.meta[name], md)
		}
	}
	return nil
}

// notRunningStore is a Store whose extension has shut down: appenders fail with ErrNotRunning.
type notRunningStore struct {
	*tsdbStore
}

func (notRunningStore) AppenderV2(context.Context) promstorage.AppenderV2 {
	return notRunningAppender{}
}

type notRunningAppender struct{}

func (notRunningAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AOptions) (promstorage.SeriesRef, error) {
	return 0, storage.ErrNotRunning
}
func (notRunningAppender) Commit() error   { return storage.ErrNotRunning }
func (notRunningAppender) Rollback() error { return storage.ErrNotRunning }

// failingCommitStore accepts appends but fails every Commit.
type failingCommitStore struct {
	*tsdbStore
	err error
}

func (s failingCommitStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return failingCommitAppender{AppenderV2: s.tsdbStore.AppenderV2(ctx), err: s.err}
}

type failingCommitAppender struct {
	promstorage.AppenderV2
	err error
}

func (a failingCommitAppender) Commit() error {
	_ = a.AppenderV2.Rollback()
	return a.err
}

// sample is one stored sample of any kind, for comparison in tests.
type sample struct {
	T  int64
	V  float64
	H  *histogram.Histogram
	FH *histogram.FloatHistogram
}

// dump reads every series of the store, keyed by the series' labels in PromQL notation.
func dump(t testing.TB, s *tsdbStore) map[string][]sample {
	t.Helper()
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	out := map[string][]sample{}
	var it chunkenc.Iterator
	for set.Next() {
		series := set.At()
		it = series.Iterator(it)
		var samples []sample
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				samples = append(samples, sample{T: ts, V: v})
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				samples = append(samples, sample{T: ts, H: h})
			case chunkenc.ValFloatHistogram:
				ts, fh := it.AtFloatHistogram(nil)
				samples = append(samples, sample{T: ts, FH: fh})
			}
		}
		require.NoError(t, it.Err())
		out[series.Labels().String()] = samples
	}
	require.NoError(t, set.Err())
	return out
}

func keys(m map[string][]sample) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// HeadStats answers Prometheus's own head statistics (the exporter's tests do not read them).
func (s *tsdbStore) HeadStats(statsByLabelName string, limit int) (*storage.HeadStats, error) {
	st := s.Head().Stats(statsByLabelName, limit)
	return &storage.HeadStats{NumSeries: st.NumSeries, MinTime: st.MinTime, MaxTime: st.MaxTime, Postings: st.IndexPostingStats}, nil
}

// Retention is Prometheus's default retention, which the test TSDB uses.
func (*tsdbStore) Retention() string { return "15d" }
