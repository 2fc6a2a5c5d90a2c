package queryext

import (
	"context"
	"maps"
	"testing"

	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/util/teststorage"
	"go.opentelemetry.io/collector/component"

	mstorage "github.com/metricstor/metricstor/storage"
)

// testStore is a real storage.Store for tests: Prometheus's own TSDB for samples and exemplars,
// and a map for metric metadata.
type testStore struct {
	*teststorage.TestStorage
	component.StartFunc
	component.ShutdownFunc
	meta map[string][]metadata.Metadata
}

var _ mstorage.Store = (*testStore)(nil)

func newTestStore(t testing.TB, meta map[string][]metadata.Metadata) *testStore {
	return &testStore{TestStorage: teststorage.New(t), meta: meta}
}

func (s *testStore) MetricMetadata(_ context.Context, metric string) (map[string][]metadata.Metadata, error) {
	if metric == "" {
		return maps.Clone(s.meta), nil
	}
	res := map[string][]metadata.Metadata{}
	if m, ok := s.meta[metric]; ok {
		res[metric] = m
	}
	return res, nil
}

// testHost offers the given extensions to Start.
type testHost map[component.ID]component.Component

func (h testHost) GetExtensions() map[component.ID]component.Component { return h }

// HeadStats answers Prometheus's own head statistics, which is what the store's mimic; the
// number of open head chunks is not exposed by Prometheus's head, so the test store reports
// one per series.
func (s *testStore) HeadStats(statsByLabelName string, limit int) (*mstorage.HeadStats, error) {
	st := s.DB.Head().Stats(statsByLabelName, limit)
	return &mstorage.HeadStats{
		NumSeries:  st.NumSeries,
		ChunkCount: int64(st.NumSeries),
		MinTime:    st.MinTime,
		MaxTime:    st.MaxTime,
		Postings:   st.IndexPostingStats,
	}, nil
}

// Retention is what the storage extension prints for its default settings.
func (*testStore) Retention() string { return "15d" }
