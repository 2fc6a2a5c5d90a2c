package tsdb

import (
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHeadStats(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})

	empty, err := db.HeadStats(labels.MetricName, 10)
	require.NoError(t, err)
	require.Zero(t, empty.NumSeries)
	require.Equal(t, int64(math.MaxInt64), empty.MinTime, "an empty head has Prometheus's empty bounds")
	require.Equal(t, int64(math.MinInt64), empty.MaxTime)
	require.Equal(t, []index.Stat{}, empty.Postings.CardinalityMetricsStats)

	for _, e := range appendAll(t, db, lbls("__name__", "http_requests_total", "job", "api", "code", "200"), floats(100, 200)...) {
		require.NoError(t, e)
	}
	for _, s := range []struct {
		ls labels.Labels
		t  int64
	}{
		{lbls("__name__", "http_requests_total", "job", "api", "code", "500"), 150},
		{lbls("__name__", "up", "job", "api"), 50},
		{lbls("__name__", "up", "job", "db"), 300},
	} {
		for _, e := range appendAll(t, db, s.ls, smp{T: s.t, F: 1}) {
			require.NoError(t, e)
		}
	}

	st, err := db.HeadStats(labels.MetricName, 10)
	require.NoError(t, err)
	require.EqualValues(t, 4, st.NumSeries)
	require.EqualValues(t, 4, st.ChunkCount, "one open head chunk per series")
	require.EqualValues(t, 50, st.MinTime)
	require.EqualValues(t, 300, st.MaxTime)
	p := st.Postings
	require.Equal(t, 6, p.NumLabelPairs)
	require.Equal(t, []index.Stat{{Name: "http_requests_total", Count: 2}, {Name: "up", Count: 2}}, p.CardinalityMetricsStats)
	require.Equal(t, []index.Stat{{Name: "__name__", Count: 2}, {Name: "code", Count: 2}, {Name: "job", Count: 2}}, p.CardinalityLabelStats)
	require.Equal(t, []index.Stat{
		{Name: "job=api", Count: 3},
		{Name: "__name__=http_requests_total", Count: 2},
		{Name: "__name__=up", Count: 2},
		{Name: "code=200", Count: 1},
		{Name: "code=500", Count: 1},
		{Name: "job=db", Count: 1},
	}, p.LabelValuePairsStats)
	size := func(name string, vals map[string]uint64) uint64 {
		var n uint64
		for v, c := range vals {
			n += labels.SizeOfLabels(name, v, c)
		}
		return n
	}
	wantSizes := map[string]uint64{
		"__name__": size("__name__", map[string]uint64{"http_requests_total": 2, "up": 2}),
		"job":      size("job", map[string]uint64{"api": 3, "db": 1}),
		"code":     size("code", map[string]uint64{"200": 1, "500": 1}),
	}
	require.Len(t, p.LabelValueStats, 3)
	for i, s := range p.LabelValueStats {
		require.Equal(t, wantSizes[s.Name], s.Count, s.Name)
		if i > 0 {
			require.LessOrEqual(t, s.Count, p.LabelValueStats[i-1].Count, "largest first")
		}
	}

	// limit keeps the largest entries; another label counts series by its values.
	st, err = db.HeadStats("job", 1)
	require.NoError(t, err)
	require.Equal(t, []index.Stat{{Name: "api", Count: 3}}, st.Postings.CardinalityMetricsStats)
	require.Equal(t, []index.Stat{{Name: "job=api", Count: 3}}, st.Postings.LabelValuePairsStats)
	require.Len(t, st.Postings.CardinalityLabelStats, 1)
	require.Len(t, st.Postings.LabelValueStats, 1)

	// Series idle past the head's grace leave the head, as in Prometheus after head compaction.
	for _, e := range appendAll(t, db, lbls("__name__", "up", "job", "db"), smp{T: 3 * hourMs, F: 1}) {
		require.NoError(t, e)
	}
	db.collectHead()
	st, err = db.HeadStats(labels.MetricName, 10)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.NumSeries)
	require.Equal(t, []index.Stat{{Name: "up", Count: 1}}, st.Postings.CardinalityMetricsStats)
	require.EqualValues(t, 3*hourMs, st.MaxTime)

	require.NoError(t, db.Close())
	_, err = db.HeadStats(labels.MetricName, 10)
	require.ErrorIs(t, err, ErrClosed)
}

// TestHeadStatsConcurrent: statistics taken while appenders create series and commit (and the
// head is collected) neither race (go test -race) nor count more series than exist.
func TestHeadStatsConcurrent(t *testing.T) {
	db, _ := openMem(t, Options{PartitionDuration: time.Hour})
	const writers, series = 2, 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range series {
				ls := lbls("__name__", "m", "writer", strconv.Itoa(w), "i", strconv.Itoa(i))
				for _, e := range appendAll(t, db, ls, smp{T: int64(i), F: 1}) {
					assert.NoError(t, e)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		st, err := db.HeadStats(labels.MetricName, 10)
		require.NoError(t, err)
		require.LessOrEqual(t, st.NumSeries, uint64(writers*series))
		db.collectHead()
	}
	st, err := db.HeadStats(labels.MetricName, 10)
	require.NoError(t, err)
	require.EqualValues(t, writers*series, st.NumSeries)
	require.Equal(t, []index.Stat{{Name: "m", Count: writers * series}}, st.Postings.CardinalityMetricsStats)
}
