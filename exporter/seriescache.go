package exporter

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync"

	promstorage "github.com/prometheus/prometheus/storage"
)

// seriesCache maps the identity of a passthrough data point (metric name, job, instance and
// attributes, as seriesKey encodes them) to the store's series: its SeriesRef. A known series
// then costs the exporter no label building and the store no hash lookup, as the scrape loop's
// cache does in Prometheus.
//
// Invariants:
//   - an entry's key is the exact encoding of the identity it was made from, and a lookup compares
//     it in full, so two identities whose hashes collide never share an entry;
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
// lookup reads one slot of an open-addressed array and the key's bytes in the generation's
// arena. Slots hold no pointers (24 bytes: no label set, which was 16 more and made the garbage
// collector read every slot), so the slot arrays and arenas cost the collector nothing to mark.
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
	cur, old cacheGen
}

// cacheGen is one generation: linear probing over slots (a power of two, at most 3/4 full),
// keys appended to arena. A slot is empty when its ref is 0 (the store never hands out 0).
// Entries are never deleted; a colliding key replaces the slot of its hash, so a hash has at
// most one slot.
type cacheGen struct {
	slots   []cacheSlot
	arena   []byte
	n       int
	touched uint64 // see touch
}

type cacheSlot struct {
	h        uint64
	ref      promstorage.SeriesRef
	off, len uint32 // the key in arena
}

// newSeriesCache returns a cache of at most about 2*size entries.
func newSeriesCache(size int) *seriesCache {
	return &seriesCache{seed: maphash.MakeSeed(), limit: max(size/cacheStripes, 1)}
}

func (c *seriesCache) hash(key []byte) uint64 { return maphash.Bytes(c.seed, key) }

// stripe picks the stripe from the hash's low bits; slot indexes use the high bits.
func (c *seriesCache) stripe(h uint64) *cacheStripe { return &c.stripes[h%cacheStripes] }

// get returns the ref cached for key, whose hash is h.
func (c *seriesCache) get(h uint64, key []byte) (promstorage.SeriesRef, bool) {
	st := c.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.getLocked(h, key, c.limit)
}

func (st *cacheStripe) getLocked(h uint64, key []byte, limit int) (promstorage.SeriesRef, bool) {
	if i, ok := st.cur.find(h); ok && st.cur.keyIs(i, key) {
		return st.cur.slots[i].ref, true
	}
	if i, ok := st.old.find(h); ok && st.old.keyIs(i, key) {
		ref := st.old.slots[i].ref
		st.putLocked(h, key, ref, limit)
		return ref, true
	}
	return 0, false
}

// cacheLookup is one lookup of a batch (getBatch): h and key in; ref and found out.
type cacheLookup struct {
	h     uint64
	key   []byte
	ref   promstorage.SeriesRef
	found bool
}

// getBatch does get for every lookup of batch. At 100k series a lookup costs two cache misses
// (the slot, then the key in the arena), and one lookup at a time pays them one after the other:
// the work between two lookups is too long for the CPU to start the next one's loads early. A
// batch takes each stripe's lock once and first touches the slots and keys of that stripe's
// lookups in a short loop whose loads do not depend on each other, so that their misses overlap;
// the lookups proper then find them in the CPU's caches. order is scratch space, returned grown.
func (c *seriesCache) getBatch(batch []cacheLookup, order []int32) []int32 {
	// Group the lookups by stripe (a counting sort), in order within a stripe.
	var start [cacheStripes + 1]int32
	for i := range batch {
		start[batch[i].h%cacheStripes+1]++
	}
	for s := 1; s <= cacheStripes; s++ {
		start[s] += start[s-1]
	}
	order = slices.Grow(order[:0], len(batch))[:len(batch)]
	next := start
	for i := range batch {
		s := batch[i].h % cacheStripes
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
			l.ref, l.found = st.getLocked(l.h, l.key, c.limit)
		}
		st.mu.Unlock()
	}
	return order
}

// touch reads the home slot of each lookup of batch[idx] and the first and last byte of the key
// in it, to bring them into the CPU's caches (see getBatch). The sum keeps the loads from being
// optimised away.
func (g *cacheGen) touch(batch []cacheLookup, idx []int32) {
	if len(g.slots) == 0 {
		return
	}
	mask := uint64(len(g.slots) - 1)
	var sum uint64
	for _, i := range idx {
		s := &g.slots[(batch[i].h>>32)&mask]
		sum += s.h
		if end := int(s.off + s.len); s.len > 0 && end <= len(g.arena) {
			sum += uint64(g.arena[s.off]) + uint64(g.arena[end-1])
		}
	}
	g.touched = sum
}

// put caches ref for key (hash h). A colliding entry of another key is replaced.
func (c *seriesCache) put(h uint64, key []byte, ref promstorage.SeriesRef) {
	if ref == 0 {
		return // not a series of the store; 0 also marks empty slots
	}
	st := c.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.putLocked(h, key, ref, c.limit)
}

func (st *cacheStripe) putLocked(h uint64, key []byte, ref promstorage.SeriesRef, limit int) {
	// A generation's arena holds at most maxArena bytes: keys that replaced colliding ones leave
	// their predecessors' bytes behind.
	maxArena := 512 * limit
	if i, ok := st.cur.find(h); ok {
		s := &st.cur.slots[i]
		if st.cur.keyIs(i, key) {
			s.ref = ref
			return
		}
		if len(st.cur.arena)+len(key) <= maxArena {
			s.off, s.len = st.cur.addKey(key)
			s.ref = ref
			return
		}
	}
	// A full generation starts the next.
	if st.cur.n >= limit || len(st.cur.arena)+len(key) > maxArena {
		st.old, st.cur = st.cur, cacheGen{}
	}
	st.cur.insert(h, key, ref)
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
		if s.h == h {
			return int(i), true
		}
	}
}

func (g *cacheGen) keyIs(i int, key []byte) bool {
	s := &g.slots[i]
	return bytes.Equal(g.arena[s.off:s.off+s.len], key)
}

func (g *cacheGen) addKey(key []byte) (off, n uint32) {
	off = uint32(len(g.arena))
	g.arena = append(g.arena, key...)
	return off, uint32(len(key))
}

// insert adds h, which is not in g, growing the slots to stay at most 3/4 full.
func (g *cacheGen) insert(h uint64, key []byte, ref promstorage.SeriesRef) {
	if 4*(g.n+1) > 3*len(g.slots) {
		g.grow()
	}
	i, _ := g.find(h)
	off, n := g.addKey(key)
	g.slots[i] = cacheSlot{h: h, ref: ref, off: off, len: n}
	g.n++
}

func (g *cacheGen) grow() {
	old := g.slots
	g.slots = make([]cacheSlot, max(64, 2*len(old)))
	for _, s := range old {
		if s.ref != 0 {
			i, _ := g.find(s.h)
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
