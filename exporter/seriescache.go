package exporter

import (
	"hash/maphash"
	"slices"
	"sync"

	promstorage "github.com/prometheus/prometheus/storage"
)

// seriesCache maps the identity of a passthrough data point (metric name, job, instance and
// attributes, as rwMetric.key encodes them) to the store's series: its SeriesRef. A known series
// then costs the exporter no label building and the store no hash lookup, as the scrape loop's
// cache does in Prometheus.
//
// Invariants:
//   - an entry is found by the identity's fingerprint: two 64-bit hashes of its encoding under
//     two seeds made at random when the cache is (hash/maphash), compared in full. The encoding
//     itself is not kept (at 100k series it was 7.5 MB, 7 % of the live heap). Two identities
//     share an entry only if both hashes of both collide: about 2^-128 for a pair, so at most
//     about n^2 * 2^-129 over the n identities a cache ever sees (under 10^-20 for a billion),
//     and seeds no sender can know keep a sender from making collisions on purpose;
//   - an entry's ref is what the store returned for the labels the exporter builds from that
//     identity. The store never gives a ref to another label set while it runs (nor does
//     Prometheus's head), and a cache lives no longer than its exporter, so the ref alone names
//     the series: the exporter appends with the ref and no labels (countingAppender.appendRef),
//     and builds the labels only when the store has dropped the series from memory
//     (storage.ErrUnknownSeriesRef) or a rejection names it.
//
// Memory is bounded by two generations of at most limit entries each: a lookup that hits the old
// generation copies the entry to the new one, and when the new one is full the old is dropped.
// Series that stop arriving thus leave the cache within two generations.
//
// Layout: at 100k series the cache is larger than the CPU's caches, so a lookup costs what it
// misses. A Go map of entries took a directory, a table, a control word, a slot and the key's own
// allocation (about 500 ns a lookup on a loaded machine, 12-20 % of the steady CPU); here a
// lookup reads one slot of an open-addressed array. Slots hold no pointers (24 bytes), so the
// slot arrays cost the garbage collector nothing to mark.
//
// It is safe for concurrent use.
type seriesCache struct {
	seed, checkSeed maphash.Seed
	limit           int // entries per generation and stripe
	stripes         [cacheStripes]cacheStripe
}

const cacheStripes = 16

type cacheStripe struct {
	mu       sync.Mutex
	cur, old cacheGen
}

// cacheGen is one generation: linear probing over slots (a power of two, at most 3/4 full).
// A slot is empty when its ref is 0 (the store never hands out 0). Entries are never deleted;
// an identity whose h collides with a cached one's replaces its slot, so an h has at most one
// slot.
type cacheGen struct {
	slots   []cacheSlot
	n       int
	touched uint64 // see touch
}

type cacheSlot struct {
	fp  fingerprint
	ref promstorage.SeriesRef
}

// fingerprint identifies a data point's identity in the cache: h places it (stripe and slot),
// check tells apart the identities whose h collide.
type fingerprint struct{ h, check uint64 }

// newSeriesCache returns a cache of at most about 2*size entries.
func newSeriesCache(size int) *seriesCache {
	return &seriesCache{seed: maphash.MakeSeed(), checkSeed: maphash.MakeSeed(), limit: max(size/cacheStripes, 1)}
}

func (c *seriesCache) fingerprint(key []byte) fingerprint {
	return fingerprint{h: maphash.Bytes(c.seed, key), check: maphash.Bytes(c.checkSeed, key)}
}

// stripe picks the stripe from the hash's low bits; slot indexes use the high bits.
func (c *seriesCache) stripe(h uint64) *cacheStripe { return &c.stripes[h%cacheStripes] }

// get returns the ref cached for the identity of fingerprint fp.
func (c *seriesCache) get(fp fingerprint) (promstorage.SeriesRef, bool) {
	st := c.stripe(fp.h)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.getLocked(fp, c.limit)
}

func (st *cacheStripe) getLocked(fp fingerprint, limit int) (promstorage.SeriesRef, bool) {
	if i, ok := st.cur.find(fp.h); ok && st.cur.slots[i].fp.check == fp.check {
		return st.cur.slots[i].ref, true
	}
	if i, ok := st.old.find(fp.h); ok && st.old.slots[i].fp.check == fp.check {
		ref := st.old.slots[i].ref
		st.putLocked(fp, ref, limit)
		return ref, true
	}
	return 0, false
}

// cacheLookup is one lookup of a batch (getBatch): fp in; ref and found out.
type cacheLookup struct {
	fp    fingerprint
	ref   promstorage.SeriesRef
	found bool
}

// getBatch does get for every lookup of batch. At 100k series a lookup costs a cache miss (its
// slot), and one lookup at a time pays them one after the other:
// the work between two lookups is too long for the CPU to start the next one's loads early. A
// batch takes each stripe's lock once and first touches the slots of that stripe's
// lookups in a short loop whose loads do not depend on each other, so that their misses overlap;
// the lookups proper then find them in the CPU's caches. order is scratch space, returned grown.
func (c *seriesCache) getBatch(batch []cacheLookup, order []int32) []int32 {
	// Group the lookups by stripe (a counting sort), in order within a stripe.
	var start [cacheStripes + 1]int32
	for i := range batch {
		start[batch[i].fp.h%cacheStripes+1]++
	}
	for s := 1; s <= cacheStripes; s++ {
		start[s] += start[s-1]
	}
	order = slices.Grow(order[:0], len(batch))[:len(batch)]
	next := start
	for i := range batch {
		s := batch[i].fp.h % cacheStripes
		order[next[s]] = int32(i)
		next[s]++
	}
	for s := range cacheStripes {
		idx := order[start[s]:start[s+1]]
		if len(idx) == 0 {
			continue
		}
		st := &c.stripes[s]
		st.mu.Lock()
		st.cur.touch(batch, idx)
		for _, i := range idx {
			l := &batch[i]
			l.ref, l.found = st.getLocked(l.fp, c.limit)
		}
		st.mu.Unlock()
	}
	return order
}

// touch reads the home slot of each lookup of batch[idx], to bring them into the CPU's caches
// (see getBatch). The sum keeps the loads from being optimised away.
func (g *cacheGen) touch(batch []cacheLookup, idx []int32) {
	if len(g.slots) == 0 {
		return
	}
	mask := uint64(len(g.slots) - 1)
	var sum uint64
	for _, i := range idx {
		sum += g.slots[(batch[i].fp.h>>32)&mask].fp.check
	}
	g.touched = sum
}

// put caches ref for the identity of fingerprint fp. A colliding entry of another identity (the
// same h) is replaced.
func (c *seriesCache) put(fp fingerprint, ref promstorage.SeriesRef) {
	if ref == 0 {
		return // not a series of the store; 0 also marks empty slots
	}
	st := c.stripe(fp.h)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.putLocked(fp, ref, c.limit)
}

func (st *cacheStripe) putLocked(fp fingerprint, ref promstorage.SeriesRef, limit int) {
	if i, ok := st.cur.find(fp.h); ok {
		st.cur.slots[i] = cacheSlot{fp: fp, ref: ref}
		return
	}
	// A full generation starts the next.
	if st.cur.n >= limit {
		st.old, st.cur = st.cur, cacheGen{}
	}
	st.cur.insert(fp, ref)
}

// find returns the slot of h, or false and the empty slot where it would go.
func (g *cacheGen) find(h uint64) (int, bool) {
	if len(g.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(g.slots) - 1)
	for i := (h >> 32) & mask; ; i = (i + 1) & mask {
		s := &g.slots[i]
		if s.ref == 0 {
			return int(i), false
		}
		if s.fp.h == h {
			return int(i), true
		}
	}
}

// insert adds fp, whose h is not in g, growing the slots to stay at most 3/4 full.
func (g *cacheGen) insert(fp fingerprint, ref promstorage.SeriesRef) {
	if 4*(g.n+1) > 3*len(g.slots) {
		g.grow()
	}
	i, _ := g.find(fp.h)
	g.slots[i] = cacheSlot{fp: fp, ref: ref}
	g.n++
}

func (g *cacheGen) grow() {
	old := g.slots
	g.slots = make([]cacheSlot, max(64, 2*len(old)))
	for _, s := range old {
		if s.ref != 0 {
			i, _ := g.find(s.fp.h)
			g.slots[i] = s
		}
	}
}

// len is the number of entries, both generations.
func (c *seriesCache) len() int {
	n := 0
	for i := range c.stripes {
		st := &c.stripes[i]
		st.mu.Lock()
		n += st.cur.n + st.old.n
		st.mu.Unlock()
	}
	return n
}
