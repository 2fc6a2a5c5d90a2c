package tsdb

import (
	"errors"
	"io"
	"math"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// iterReader is what both *pebble.DB and *pebble.Snapshot offer for reading.
type iterReader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
	Get(key []byte) ([]byte, io.Closer, error)
}

// indexReader reads the inverted index of partitions through r: the `j` posting lists
// (postinglists.go) and, in partitions up to legacyUpTo, the `i` keys that versions before the
// lists wrote, one per series and label. Both are read there: a database written by such a
// version keeps writing its newest partition as lists once opened by this one.
type indexReader struct {
	r          iterReader
	legacyUpTo int64 // the newest partition with `i` keys; math.MinInt64 when there is none
}

func (ir indexReader) legacy(part int64) bool { return part <= ir.legacyUpTo }

// index reads the inverted index through r (the DB or a snapshot of it).
func (db *DB) index(r iterReader) indexReader {
	return indexReader{r: r, legacyUpTo: db.legacyIndexUpTo}
}

// noLegacyIndex is indexReader.legacyUpTo for a database without `i` keys.
const noLegacyIndex = math.MinInt64

// valueFilter selects label values: either an exact list (looked up by seeking) or a
// predicate evaluated once per distinct value of the label.
type valueFilter struct {
	exact []string
	match func(string) bool
}

// filterFor selects the values v with m.Matches(v) == want.
func filterFor(m *labels.Matcher, want bool) valueFilter {
	switch {
	case m.Type == labels.MatchEqual && want && m.Value != "",
		m.Type == labels.MatchNotEqual && !want && m.Value != "":
		return valueFilter{exact: []string{m.Value}}
	case m.Type == labels.MatchRegexp && want, m.Type == labels.MatchNotRegexp && !want:
		if set := m.SetMatches(); len(set) > 0 && !slices.Contains(set, "") {
			return valueFilter{exact: set}
		}
	}
	return valueFilter{match: func(v string) bool { return m.Matches(v) == want }}
}

// postingsForMatchers returns the refs, ascending, of the series of a partition whose labels
// satisfy every matcher. As in Prometheus, a matcher that matches the empty string also
// matches series that lack the label.
func (ir indexReader) postingsForMatchers(part int64, ms []*labels.Matcher) ([]uint64, error) {
	var its, nots [][]uint64
	for _, m := range ms {
		if m.Matches("") {
			p, err := ir.postingsForValues(part, m.Name, filterFor(m, false))
			if err != nil {
				return nil, err
			}
			nots = append(nots, p)
			continue
		}
		p, err := ir.postingsForValues(part, m.Name, filterFor(m, true))
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			return nil, nil
		}
		its = append(its, p)
	}
	var res []uint64
	if len(its) == 0 {
		var err error
		if res, err = allPostings(ir.r, part); err != nil {
			return nil, err
		}
	} else {
		slices.SortFunc(its, func(a, b []uint64) int { return len(a) - len(b) })
		res = its[0]
		for _, p := range its[1:] {
			res = intersect(res, p)
		}
	}
	for _, n := range nots {
		res = subtract(res, n)
	}
	return res, nil
}

// postingsForValues returns the refs, ascending, of the series whose label name has a value
// selected by f.
func (ir indexReader) postingsForValues(part int64, name string, f valueFilter) ([]uint64, error) {
	var refs []uint64
	var err error
	if f.exact != nil {
		var key []byte
		for _, v := range f.exact {
			key = postingListKey(key[:0], part, name, v)
			val, closer, gerr := ir.r.Get(key)
			if errors.Is(gerr, pebble.ErrNotFound) {
				continue
			}
			if gerr != nil {
				return nil, gerr
			}
			refs, err = decodeRefLists(refs, val)
			_ = closer.Close()
			if err != nil {
				return nil, err
			}
		}
	} else {
		prefix := postingListNamePrefix(nil, part, name)
		it, err := ir.r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return nil, err
		}
		for it.First(); it.Valid(); it.Next() {
			value, rest, err := getString(it.Key()[len(prefix):])
			if err != nil || len(rest) != 0 {
				_ = it.Close()
				return nil, errCorruptKey
			}
			if !f.match(value) {
				continue
			}
			val, err := it.ValueAndErr()
			if err == nil {
				refs, err = decodeRefLists(refs, val)
			}
			if err != nil {
				_ = it.Close()
				return nil, err
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	if ir.legacy(part) {
		if refs, err = legacyPostingsForValues(refs, ir.r, part, name, f); err != nil {
			return nil, err
		}
	}
	// A series has one value per label name, so the lists of different values are disjoint;
	// a list may name a series twice (postinglists.go).
	slices.Sort(refs)
	return slices.Compact(refs), nil
}

// legacyPostingsForValues appends the refs of the `i` keys whose label name has a value selected
// by f.
func legacyPostingsForValues(refs []uint64, r iterReader, part int64, name string, f valueFilter) ([]uint64, error) {
	collect := func(it *pebble.Iterator, prefixLen int) {
		for ; it.Valid(); it.Next() {
			k := it.Key()
			if len(k) != prefixLen+8 {
				return
			}
			refs = append(refs, binaryRef(k[prefixLen:]))
		}
	}
	if f.exact != nil {
		for _, v := range f.exact {
			prefix := postingsValuePrefix(nil, part, name, v)
			it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
			if err != nil {
				return nil, err
			}
			it.First()
			collect(it, len(prefix))
			if err := it.Close(); err != nil {
				return nil, err
			}
		}
		return refs, nil
	}
	namePrefix := postingsNamePrefix(nil, part, name)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: namePrefix, UpperBound: prefixEnd(namePrefix)})
	if err != nil {
		return nil, err
	}
	for valid := it.First(); valid; {
		value, rest, err := getString(it.Key()[len(namePrefix):])
		if err != nil || len(rest) != 8 {
			_ = it.Close()
			return nil, errCorruptKey
		}
		// Copied: the iterator reuses the memory of its key.
		valuePrefix := slices.Clone(it.Key()[:len(it.Key())-8])
		if !f.match(value) {
			valid = it.SeekGE(prefixEnd(valuePrefix))
			continue
		}
		n := len(valuePrefix)
		for ; it.Valid() && len(it.Key()) == n+8 && string(it.Key()[:n]) == string(valuePrefix); it.Next() {
			refs = append(refs, binaryRef(it.Key()[n:]))
		}
		valid = it.Valid()
	}
	return refs, it.Close()
}

// allPostings returns the refs of every series of a partition, ascending.
func allPostings(r iterReader, part int64) ([]uint64, error) {
	prefix := partSeriesPrefix(nil, part)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, err
	}
	var refs []uint64
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) == len(prefix)+8 {
			refs = append(refs, binaryRef(it.Key()[len(prefix):]))
		}
	}
	return refs, it.Close()
}

// labelNames adds the distinct label names indexed in a partition to into.
func (ir indexReader) labelNames(part int64, into map[string]struct{}) error {
	if err := eachLabelName(ir.r, postingListPartPrefix(nil, part), into); err != nil {
		return err
	}
	if ir.legacy(part) {
		return eachLabelName(ir.r, postingsPartPrefix(nil, part), into)
	}
	return nil
}

// eachLabelName adds the names of the index keys under prefix (a partition of the `i` or `j`
// family) to into, with one seek per name.
func eachLabelName(r iterReader, prefix []byte, into map[string]struct{}) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		name, _, err := getString(it.Key()[len(prefix):])
		if err != nil {
			_ = it.Close()
			return err
		}
		into[name] = struct{}{}
		valid = it.SeekGE(prefixEnd(putString(slices.Clone(prefix), name)))
	}
	return it.Close()
}

// labelValues adds the distinct values of a label name indexed in a partition to into.
func (ir indexReader) labelValues(part int64, name string, into map[string]struct{}) error {
	prefix := postingListNamePrefix(nil, part, name)
	it, err := ir.r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		value, rest, err := getString(it.Key()[len(prefix):])
		if err != nil || len(rest) != 0 {
			_ = it.Close()
			return errCorruptKey
		}
		into[value] = struct{}{}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if !ir.legacy(part) {
		return nil
	}
	prefix = postingsNamePrefix(nil, part, name)
	it, err = ir.r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		value, rest, err := getString(it.Key()[len(prefix):])
		if err != nil || len(rest) != 8 {
			_ = it.Close()
			return errCorruptKey
		}
		into[value] = struct{}{}
		valid = it.SeekGE(prefixEnd(it.Key()[:len(it.Key())-8]))
	}
	return it.Close()
}

// union merges ascending lists into one ascending list without duplicates.
func union(a, b []uint64) []uint64 {
	if len(a) == 0 {
		return b
	}
	if len(b) == 0 {
		return a
	}
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

func intersect(a, b []uint64) []uint64 {
	var out []uint64
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

func subtract(a, b []uint64) []uint64 {
	if len(b) == 0 {
		return a
	}
	out := make([]uint64, 0, len(a))
	j := 0
	for _, r := range a {
		for j < len(b) && b[j] < r {
			j++
		}
		if j < len(b) && b[j] == r {
			continue
		}
		out = append(out, r)
	}
	return out
}
