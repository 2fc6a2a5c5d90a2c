package tsdb

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"
)

// TestChunkQuerierWireChunks: remote read's streamed answer sends the chunks of ChunkQuerier as
// they are, and its clients decode only Prometheus's encodings. Over stored decimal chunks (cut
// at partition boundaries and closed), XOR chunks with stale markers, open head chunks and
// native histograms, in three partitions, every chunk is XOR, histogram or float histogram, the
// series come sorted, and the chunks decode to exactly the samples Select returns, trimmed to
// the range. Also after a reopen, when the heads are stored too.
func TestChunkQuerierWireChunks(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Minute})
	var floatsWant, staleWant, histWant []smp
	for i := range int64(16) { // 15s apart: four partitions of one minute
		ts := i * 15_000
		floatsWant = append(floatsWant, smp{T: ts, F: 100 + float64(i)/4}) // short decimals
		v := float64(i)
		if i == 9 {
			v = math.Float64frombits(value.StaleNaN)
		}
		staleWant = append(staleWant, smp{T: ts, F: v})
		n := uint64(i + 1)
		histWant = append(histWant, smp{T: ts, H: &histogram.Histogram{
			Schema: 0, Count: 2 * n, Sum: float64(n), PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}},
			PositiveBuckets: []int64{int64(n), 0},
		}})
	}
	mustAppend(t, db, lbls("__name__", "a_decimal"), floatsWant...)
	mustAppend(t, db, lbls("__name__", "b_stale"), staleWant...)
	mustAppend(t, db, lbls("__name__", "c_hist"), histWant...)

	check := func(t *testing.T, db *DB) {
		for _, r := range []struct{ mint, maxt int64 }{{0, 1 << 40}, {20_000, 130_000}} {
			want := selectStrict(t, db, r.mint, r.maxt, nil, eq("__name__", "a_decimal"))
			for k, v := range selectStrict(t, db, r.mint, r.maxt, nil, eq("__name__", "b_stale")) {
				want[k] = v
			}
			for k, v := range selectStrict(t, db, r.mint, r.maxt, nil, eq("__name__", "c_hist")) {
				want[k] = v
			}
			require.Len(t, want, 3)

			q, err := db.ChunkQuerier(r.mint, r.maxt)
			require.NoError(t, err)
			ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
			var names []string
			for ss.Next() {
				s := ss.At()
				names = append(names, s.Labels().Get("__name__"))
				var got []smp
				it := s.Iterator(nil)
				for it.Next() {
					m := it.At()
					switch enc := m.Chunk.Encoding(); enc {
					case chunkenc.EncXOR, chunkenc.EncHistogram, chunkenc.EncFloatHistogram:
					default:
						t.Fatalf("%s: chunk of encoding %v on the wire", s.Labels(), enc)
					}
					require.LessOrEqual(t, m.MinTime, m.MaxTime)
					cs := readIter(t, m.Chunk.Iterator(nil))
					require.Equal(t, m.MinTime, cs[0].T)
					require.Equal(t, m.MaxTime, cs[len(cs)-1].T)
					got = append(got, cs...)
				}
				require.NoError(t, it.Err())
				requireSamples(t, want[s.Labels().String()], got, s.Labels().String())
				require.GreaterOrEqual(t, got[0].T, r.mint)
				require.LessOrEqual(t, got[len(got)-1].T, r.maxt)
			}
			require.NoError(t, ss.Err())
			require.Equal(t, []string{"a_decimal", "b_stale", "c_hist"}, names, "sorted by labels")
			require.NoError(t, q.Close())
		}
	}
	decimals := func(db *DB) int {
		n := 0
		require.NoError(t, db.scanChunks(db.pdb, 0, func(_ uint64, c storedChunk) error {
			if isDecimal(c.enc) {
				n++
			}
			return nil
		}))
		return n
	}
	require.NotZero(t, decimals(db), "the chunks cut at partition boundaries are stored decimal")
	t.Run("heads_open", func(t *testing.T) { check(t, db) })
	db = reopen(t, db, fs)
	t.Run("reopened", func(t *testing.T) { check(t, db) })
}
