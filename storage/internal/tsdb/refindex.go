package tsdb

import (
	"sync"
	"sync/atomic"
)

// refIndex maps series refs to their memSeries. Refs are handed out in increasing order, so a
// paged array indexes them directly: a lookup is three loads, with no hashing and no lock. It is
// on the path of every append of a known series (the exporter hands the store's refs back), where
// a striped hash map cost a cache miss or two per sample.
//
// Pages whose series were all collected (head GC) are dropped, so memory follows the series in
// memory plus one pointer per page of refs ever handed out.
type refIndex struct {
	mu  sync.Mutex                 // serialises changes
	dir atomic.Pointer[[]*refPage] // immutable once stored; a change stores a new slice
	n   atomic.Int64               // series registered
}

const (
	refPageBits = 12
	refPageSize = 1 << refPageBits
)

type refPage struct {
	slots [refPageSize]atomic.Pointer[memSeries]
	used  int // guarded by refIndex.mu
}

func (x *refIndex) get(ref uint64) *memSeries {
	d := x.dir.Load()
	if d == nil {
		return nil
	}
	i := ref >> refPageBits
	if i >= uint64(len(*d)) {
		return nil
	}
	p := (*d)[i]
	if p == nil {
		return nil
	}
	return p.slots[ref&(refPageSize-1)].Load()
}

// add registers s under its ref, replacing whatever was there.
func (x *refIndex) add(s *memSeries) { x.addBelow(s, 0) }

// addBelow is add that, when limit is positive, registers s only while fewer than limit series
// are registered, and tells whether it did.
func (x *refIndex) addBelow(s *memSeries, limit int) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if limit > 0 && x.n.Load() >= int64(limit) {
		return false
	}
	var d []*refPage
	if cur := x.dir.Load(); cur != nil {
		d = *cur
	}
	i := s.ref >> refPageBits
	if i >= uint64(len(d)) || d[i] == nil {
		nd := make([]*refPage, max(uint64(len(d)), i+1))
		copy(nd, d)
		nd[i] = &refPage{}
		x.dir.Store(&nd)
		d = nd
	}
	p := d[i]
	if p.slots[s.ref&(refPageSize-1)].Swap(s) == nil {
		p.used++
		x.n.Add(1)
	}
	return true
}

// remove unregisters s, if it is what its ref names.
func (x *refIndex) remove(s *memSeries) {
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := x.dir.Load()
	i := s.ref >> refPageBits
	if cur == nil || i >= uint64(len(*cur)) || (*cur)[i] == nil {
		return
	}
	p := (*cur)[i]
	if !p.slots[s.ref&(refPageSize-1)].CompareAndSwap(s, nil) {
		return
	}
	x.n.Add(-1)
	if p.used--; p.used == 0 {
		nd := make([]*refPage, len(*cur))
		copy(nd, *cur)
		nd[i] = nil
		x.dir.Store(&nd)
	}
}

func (x *refIndex) count() int { return int(x.n.Load()) }

// each calls f for every registered series; series added or removed meanwhile may or may not
// be seen.
func (x *refIndex) each(f func(*memSeries)) {
	d := x.dir.Load()
	if d == nil {
		return
	}
	for _, p := range *d {
		if p == nil {
			continue
		}
		for i := range p.slots {
			if s := p.slots[i].Load(); s != nil {
				f(s)
			}
		}
	}
}
