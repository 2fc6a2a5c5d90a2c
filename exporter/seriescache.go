package exporter

import (
	"hash/maphash"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
)

// seriesCache maps the identity of a passthrough data point (metric name, job, instance and
// attributes, as seriesKey encodes them) to the store's series: its label set and SeriesRef. A
// known series then costs the exporter no label building and the store no hash lookup, as the
// scrape loop's cache does in Prometheus.
//
// Invariants:
//   - an entry's key is the exact encoding of the identity it was made from, and a lookup compares
//     it in full, so two identities whose hashes collide never share an entry;
//   - an entry's labels are what the exporter would build from that identity, so handing them to
//     the store is the same as building them;
//   - a ref is only a hint: the store takes it only when it still names the same labels (the
//     metricstor store checks labels.Equal; Prometheus's head never reuses a ref) and otherwise
//     resolves the labels and returns the right ref, which replaces the cached one.
//
// Memory is bounded by two generations of at most limit entries each: a lookup that hits the old
// generation moves the entry to the new one, and when the new one is full the old is dropped.
// Series that stop arriving thus leave the cache within two generations.
//
// It is safe for concurrent use.
type seriesCache struct {
	seed    maphash.Seed
	limit   int // entries per generation and stripe
	stripes [cacheStripes]cacheStripe
}

const cacheStripes = 16

type cacheStripe struct {
	mu       sync.Mutex
	cur, old map[uint64]cacheEntry
}

type cacheEntry struct {
	key string
	ls  labels.Labels // owned: never a reused buffer
	ref promstorage.SeriesRef
}

// newSeriesCache returns a cache of at most about 2*size entries.
func newSeriesCache(size int) *seriesCache {
	c := &seriesCache{seed: maphash.MakeSeed(), limit: max(size/cacheStripes, 1)}
	for i := range c.stripes {
		c.stripes[i].cur = map[uint64]cacheEntry{}
	}
	return c
}

func (c *seriesCache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// get returns the labels and ref cached for key, whose hash is h.
func (c *seriesCache) get(h uint64, key []byte) (labels.Labels, promstorage.SeriesRef, bool) {
	st := &c.stripes[h%cacheStripes]
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.cur[h]; ok && e.key == string(key) {
		return e.ls, e.ref, true
	}
	if e, ok := st.old[h]; ok && e.key == string(key) {
		delete(st.old, h)
		st.putLocked(h, e, c.limit)
		return e.ls, e.ref, true
	}
	return labels.Labels{}, 0, false
}

// put caches ls and ref for key (hash h). ls must not be a reused buffer. A colliding entry of
// another key is replaced.
func (c *seriesCache) put(h uint64, key []byte, ls labels.Labels, ref promstorage.SeriesRef) {
	st := &c.stripes[h%cacheStripes]
	st.mu.Lock()
	defer st.mu.Unlock()
	if e, ok := st.cur[h]; ok && e.key == string(key) {
		e.ref = ref
		st.cur[h] = e
		return
	}
	st.putLocked(h, cacheEntry{key: string(key), ls: ls, ref: ref}, c.limit)
}

func (st *cacheStripe) putLocked(h uint64, e cacheEntry, limit int) {
	if _, ok := st.cur[h]; !ok && len(st.cur) >= limit {
		st.old, st.cur = st.cur, make(map[uint64]cacheEntry, limit)
	}
	st.cur[h] = e
}

// len is the number of entries, both generations.
func (c *seriesCache) len() int {
	n := 0
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		n += len(st.cur) + len(st.old)
		st.mu.Unlock()
	}
	return n
}
