package exporter

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

func TestSeriesCacheCollision(t *testing.T) {
	c := newSeriesCache(64)
	// Two identities forced onto one h: the check tells them apart.
	a, b := fingerprint{h: 42, check: 1}, fingerprint{h: 42, check: 2}
	c.put(a, 1)
	ref, ok := c.get(a)
	require.True(t, ok)
	assert.Equal(t, promstorage.SeriesRef(1), ref)

	_, ok = c.get(b)
	assert.False(t, ok, "another identity with the same h is not the cached series")
	_, ok = c.get(fingerprint{h: 43, check: 1})
	assert.False(t, ok, "another identity with the same check is not the cached series")

	c.put(b, 2)
	_, ok = c.get(a)
	assert.False(t, ok, "the colliding identity replaced it")
	ref, ok = c.get(b)
	require.True(t, ok)
	assert.Equal(t, promstorage.SeriesRef(2), ref)

	c.put(b, 3) // the store gave another ref
	ref, _ = c.get(b)
	assert.Equal(t, promstorage.SeriesRef(3), ref)
	assert.Equal(t, 1, c.len(), "an h has one slot")
}

// TestSeriesCacheFingerprint: an identity's fingerprint is the same each time, those of
// different identities differ in both hashes, and the two hashes are not one hash twice.
func TestSeriesCacheFingerprint(t *testing.T) {
	c := newSeriesCache(64)
	seen := map[uint64]bool{}
	for i := range 10_000 {
		k := fmt.Appendf(nil, "series %d", i)
		fp := c.fingerprint(k)
		require.Equal(t, fp, c.fingerprint(append([]byte(nil), k...)))
		require.NotEqual(t, fp.h, fp.check, "the two hashes have their own seeds")
		require.False(t, seen[fp.h] || seen[fp.check], "a hash repeated at %d", i)
		seen[fp.h], seen[fp.check] = true, true
	}
	other := newSeriesCache(64)
	k := []byte("series 0")
	assert.NotEqual(t, c.fingerprint(k), other.fingerprint(k), "each cache makes its own seeds")
}

func TestSeriesCacheBounded(t *testing.T) {
	const size = cacheStripes * 4
	c := newSeriesCache(size)
	key := func(i int) []byte { return fmt.Appendf(nil, "series %d", i) }
	for i := range 100 * size {
		c.put(c.fingerprint(key(i)), promstorage.SeriesRef(i+1))
		// A series that keeps arriving stays.
		ref, ok := c.get(c.fingerprint(key(0)))
		require.True(t, ok, "series 0 lost after %d others", i)
		require.Equal(t, promstorage.SeriesRef(1), ref)
	}
	assert.LessOrEqual(t, c.len(), 2*size)
}

// TestSeriesCacheGrows fills one generation far past its initial slots: every entry is found
// with its own ref, a key never seen is not, and a ref update keeps one entry.
func TestSeriesCacheGrows(t *testing.T) {
	const n = 20_000
	c := newSeriesCache(cacheStripes * n) // one generation holds them all
	fp := func(i int) fingerprint { return c.fingerprint(fmt.Appendf(nil, "series %d", i)) }
	for i := range n {
		c.put(fp(i), promstorage.SeriesRef(i+1))
	}
	require.Equal(t, n, c.len())
	for i := range n {
		ref, ok := c.get(fp(i))
		require.True(t, ok, i)
		require.Equal(t, promstorage.SeriesRef(i+1), ref)
	}
	_, ok := c.get(fp(n))
	assert.False(t, ok)
	c.put(fp(7), 99)
	ref, ok := c.get(fp(7))
	require.True(t, ok)
	assert.Equal(t, promstorage.SeriesRef(99), ref)
	assert.Equal(t, n, c.len())
	c.put(fp(n), 0)
	assert.Equal(t, n, c.len(), "ref 0 names no series and is not cached")
}

// An h whose identity keeps changing (colliding identities) replaces its slot each time: the
// cache does not grow.
func TestSeriesCacheCollidingBounded(t *testing.T) {
	c := newSeriesCache(cacheStripes * 4)
	const h = 5
	for i := range 10_000 {
		fp := fingerprint{h: h, check: uint64(i)}
		c.put(fp, promstorage.SeriesRef(i+1))
		ref, ok := c.get(fp)
		require.True(t, ok)
		require.Equal(t, promstorage.SeriesRef(i+1), ref)
	}
	assert.Equal(t, 1, c.len())
}

// refAppender models the store's refs: it records what the exporter hands over (ref and labels)
// and answers with the ref of the label set (assigning the next one to a new label set). A ref
// with no labels names the label set it was given to; after forget it names none, as when the
// store has dropped its series from memory, and the label set gets a new ref.
type refAppender struct {
	refs    map[string]promstorage.SeriesRef
	byRef   map[promstorage.SeriesRef]string
	next    promstorage.SeriesRef
	handed  []promstorage.SeriesRef
	labels  []string // as handed over; "{}" for none
	written []string // the series each append went to; "" when refused
}

func newRefAppender() *refAppender {
	return &refAppender{refs: map[string]promstorage.SeriesRef{}, byRef: map[promstorage.SeriesRef]string{}}
}

func (a *refAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, _, _ int64, _ float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ promstorage.AOptions) (promstorage.SeriesRef, error) {
	a.handed = append(a.handed, ref)
	a.labels = append(a.labels, ls.String())
	if ls.IsEmpty() {
		series, ok := a.byRef[ref]
		if !ok {
			a.written = append(a.written, "")
			return 0, fmt.Errorf("series ref %d: %w", ref, storage.ErrUnknownSeriesRef)
		}
		a.written = append(a.written, series)
		return ref, nil
	}
	r, ok := a.refs[ls.String()]
	if !ok {
		a.next++
		r = a.next
		a.refs[ls.String()] = r
		a.byRef[r] = ls.String()
	}
	a.written = append(a.written, ls.String())
	return r, nil
}
func (*refAppender) Commit() error   { return nil }
func (*refAppender) Rollback() error { return nil }

func (a *refAppender) forget() {
	clear(a.refs)
	clear(a.byRef)
}

// passthroughGauge is what the remote_write receiver makes of one series with one sample; attrs
// are name/value pairs in order.
func passthroughGauge(name string, attrs ...string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr(passthrough.JobAttribute, "node")
	rm.Resource().Attributes().PutStr(passthrough.InstanceAttribute, "host:9100")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(passthrough.ScopeName)
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetTimestamp(ts(t0))
	dp.SetDoubleValue(1)
	for i := 0; i+1 < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
	return md
}

// TestSeriesRefs shows how the exporter uses the store's refs: the first point of a series hands
// over its labels, later ones only the ref the store returned; a changed identity (a processor
// rewrote an attribute, or added one) is another series; when the store no longer knows a ref the
// point is appended again with its labels and the new ref is kept; attributes in another order
// are the same series.
func TestSeriesRefs(t *testing.T) {
	exp, err := newMetricstorExporter(createDefaultConfig().(*Config), componenttest.NewNopTelemetrySettings())
	require.NoError(t, err)
	app := newRefAppender()
	// push returns what the point's last append handed over and the series it went to.
	push := func(md pmetric.Metrics) (promstorage.SeriesRef, string, string) {
		t.Helper()
		st := exp.pool.Get().(*pushState)
		defer exp.pool.Put(st)
		st.app.reset(app)
		fatal, invalid := writeRemoteWrite(context.Background(), md, &st.app, exp.series, st)
		require.NoError(t, fatal)
		require.NoError(t, invalid)
		require.Zero(t, st.app.rejected, "nothing refused")
		n := len(app.handed) - 1
		return app.handed[n], app.labels[n], app.written[n]
	}
	const cpu = `{__name__="cpu", cpu="0", instance="host:9100", job="node", mode="idle"}`

	ref, ls, series := push(passthroughGauge("cpu", "mode", "idle", "cpu", "0"))
	assert.Zero(t, ref, "first point: no ref yet")
	assert.Equal(t, cpu, ls)
	ref, ls, series = push(passthroughGauge("cpu", "mode", "idle", "cpu", "0"))
	assert.Equal(t, promstorage.SeriesRef(1), ref, "known series: the store's ref")
	assert.Equal(t, "{}", ls, "without labels")
	assert.Equal(t, cpu, series)

	ref, ls, _ = push(passthroughGauge("cpu", "mode", "user", "cpu", "0"))
	assert.Zero(t, ref)
	assert.Equal(t, `{__name__="cpu", cpu="0", instance="host:9100", job="node", mode="user"}`, ls)
	ref, ls, _ = push(passthroughGauge("cpu", "mode", "idle", "cpu", "0", "extra", "x"))
	assert.Zero(t, ref)
	assert.Equal(t, `{__name__="cpu", cpu="0", extra="x", instance="host:9100", job="node", mode="idle"}`, ls)
	ref, _, series = push(passthroughGauge("cpu", "mode", "idle", "cpu", "0", "empty", ""))
	assert.Equal(t, promstorage.SeriesRef(1), ref, "an empty attribute is no label")
	assert.Equal(t, cpu, series)
	ref, _, series = push(passthroughGauge("cpu", "job", "ignored", "mode", "idle", "cpu", "0"))
	assert.Equal(t, promstorage.SeriesRef(1), ref, "a job attribute is no label")
	assert.Equal(t, cpu, series)

	app.forget()
	before := len(app.handed)
	ref, ls, series = push(passthroughGauge("cpu", "mode", "idle", "cpu", "0"))
	require.Equal(t, before+2, len(app.handed), "the ref, refused, then the labels")
	assert.Equal(t, promstorage.SeriesRef(1), app.handed[before])
	assert.Equal(t, "", app.written[before], "the store no longer knows the ref")
	assert.Zero(t, ref)
	assert.Equal(t, cpu, ls)
	assert.Equal(t, cpu, series)
	ref, ls, series = push(passthroughGauge("cpu", "mode", "idle", "cpu", "0"))
	assert.Equal(t, app.refs[cpu], ref, "the store's new ref")
	assert.NotEqual(t, promstorage.SeriesRef(1), ref)
	assert.Equal(t, "{}", ls)
	assert.Equal(t, cpu, series)

	ref, ls, _ = push(passthroughGauge("cpu", "cpu", "0", "mode", "idle"))
	assert.Zero(t, ref, "another order is another cache entry")
	assert.Equal(t, cpu, ls, "of the same series")
}

// A sample of a series the cache knows (appended by its ref alone) that the store refuses is
// reported with the series' labels, as one appended by its labels is.
func TestPushPassthroughRejectedCachedSeries(t *testing.T) {
	store := &byRefCountingStore{tsdbStore: newTSDBStore(t)}
	h := newHarness(t, store, nil)
	at := func(ms int64, v float64) pmetric.Metrics {
		md := passthroughGauge("cpu", "mode", "idle")
		dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0)
		dp.SetTimestamp(ts(ms))
		dp.SetDoubleValue(v)
		return md
	}
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), at(t0+60_000, 1)))
	require.Zero(t, store.byRef.Load())
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), at(t0+120_000, 2)))
	require.Equal(t, int32(1), store.byRef.Load(), "appended by its ref alone")

	err := h.exp.ConsumeMetrics(context.Background(), at(t0, 3))
	require.Equal(t, int32(2), store.byRef.Load())
	require.Error(t, err)
	assert.ErrorIs(t, err, promstorage.ErrOutOfOrderSample)
	assert.Contains(t, err.Error(), `first out_of_order: series {__name__="cpu", instance="host:9100", job="node", mode="idle"} at 1700000000000: out of order sample`)
	assert.Equal(t, map[string][]sample{
		`{__name__="cpu", instance="host:9100", job="node", mode="idle"}`: {{T: t0 + 60_000, V: 1}, {T: t0 + 120_000, V: 2}},
	}, dump(t, store.tsdbStore))
}

// byRefCountingStore counts the appends that name their series by ref alone, without labels.
type byRefCountingStore struct {
	*tsdbStore
	byRef atomic.Int32
}

func (s *byRefCountingStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return byRefCountingAppender{AppenderV2: s.tsdbStore.AppenderV2(ctx), n: &s.byRef}
}

type byRefCountingAppender struct {
	promstorage.AppenderV2
	n *atomic.Int32
}

func (a byRefCountingAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if ls.IsEmpty() {
		a.n.Add(1)
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// Concurrent pushes of passthrough data share the series cache; run with -race.
func TestPushPassthroughConcurrent(t *testing.T) {
	store := newTSDBStore(t)
	h := newHarness(t, store, nil)
	const workers, pushes = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range pushes {
				md := passthroughGauge("shared", "worker", fmt.Sprint(w))
				dp := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Gauge().DataPoints().At(0)
				dp.SetTimestamp(ts(t0 + int64(i)*1000))
				assert.NoError(t, h.exp.ConsumeMetrics(context.Background(), md))
			}
		})
	}
	wg.Wait()
	got := dump(t, store)
	require.Len(t, got, workers)
	for _, samples := range got {
		assert.Len(t, samples, pushes)
	}
}

// TestSeriesCacheGetBatch checks that a batch answers as get does, one by one: hits in either
// generation (an old one's hit moves to the current one), misses, and keys whose hashes collide.
func TestSeriesCacheGetBatch(t *testing.T) {
	const size = cacheStripes * 8
	c := newSeriesCache(size)
	fp := func(i int) fingerprint { return c.fingerprint(fmt.Appendf(nil, "series %d", i)) }
	collideA, collideB := fingerprint{h: 7, check: 1}, fingerprint{h: 7, check: 2}
	// Enough entries for some to sit in the old generations.
	const cached = size + size/2
	fill := func(c *seriesCache) {
		for i := range cached {
			c.put(fp(i), promstorage.SeriesRef(i+1))
		}
		// Two identities forced onto one h: only the last one put is found.
		c.put(collideA, 9001)
		c.put(collideB, 9002)
	}
	fill(c)

	var batch, want []cacheLookup
	for i := range cached + 50 { // the last 50 were never cached
		batch = append(batch, cacheLookup{fp: fp(i)})
	}
	batch = append(batch, cacheLookup{fp: collideA}, cacheLookup{fp: collideB})
	// What get answers on a copy made the same way (get and getBatch both move old hits).
	ref := newSeriesCache(size)
	fill(ref)
	for _, l := range batch {
		r, ok := ref.get(l.fp)
		want = append(want, cacheLookup{fp: l.fp, ref: r, found: ok})
	}

	c.getBatch(batch, nil)
	hits := 0
	for i := range batch {
		require.Equal(t, want[i].found, batch[i].found, "lookup %d", i)
		assert.Equal(t, want[i].ref, batch[i].ref, "lookup %d", i)
		if batch[i].found {
			hits++
		}
	}
	assert.Greater(t, hits, cached/2, "most cached series are found")
	assert.False(t, batch[len(batch)-2].found, "a colliding identity that was replaced is not found")
	assert.Equal(t, promstorage.SeriesRef(9002), batch[len(batch)-1].ref)
	assert.Equal(t, ref.len(), c.len(), "the batch moved the same old hits as get did")
}

// BenchmarkSeriesCacheGet looks up 100,000 cached series in the same order each round, as a
// remote write sender's rounds do: at that size the cache is larger than the CPU's caches, so
// what it costs is mostly memory latency (a profile of the binary at 100k series showed the
// lookup at 12-20 % of the steady CPU).
//
// one looks them up one at a time, batch as the exporter does, a request's 2,000 at a time.
func BenchmarkSeriesCacheGet(b *testing.B) {
	const n = 100_000
	c := newSeriesCache(seriesCacheSize)
	fps := make([]fingerprint, n)
	for i := range fps {
		fps[i] = c.fingerprint(fmt.Appendf(nil, "\x0fnode_cpu_seconds_total\x07loadgen\x0ehost-%05d:9100\x03cpu\x02%d\x04mode\x06user%03d", i/100, i%16, i))
		c.put(fps[i], promstorage.SeriesRef(i+1))
	}
	b.Run("one", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if ref, ok := c.get(fps[i]); !ok || ref != promstorage.SeriesRef(i+1) {
				b.Fatal("missed", i)
			}
			if i++; i == n {
				i = 0
			}
		}
	})
	b.Run("batch", func(b *testing.B) {
		look := make([]cacheLookup, 2000)
		var order []int32
		i := 0
		for b.Loop() {
			// b.N counts batches; ns/op is per batch, divided below per lookup.
			from := i
			for j := range look {
				look[j] = cacheLookup{fp: fps[i]}
				if i++; i == n {
					i = 0
				}
			}
			order = c.getBatch(look, order)
			for j := range look {
				if want := promstorage.SeriesRef((from+j)%n + 1); !look[j].found || look[j].ref != want {
					b.Fatal("missed", from+j)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(look)), "ns/lookup")
	})
}
