package tsdb

import (
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// iterReader is what both *pebble.DB and *pebble.Snapshot offer for reading.
type iterReader interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

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
func postingsForMatchers(r iterReader, part int64, ms []*labels.Matcher) ([]uint64, error) {
	var its, nots [][]uint64
	for _, m := range ms {
		if m.Matches("") {
			p, err := postingsForValues(r, part, m.Name, filterFor(m, false))
			if err != nil {
				return nil, err
			}
			nots = append(nots, p)
			continue
		}
		p, err := postingsForValues(r, part, m.Name, filterFor(m, true))
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
		if res, err = allPostings(r, part); err != nil {
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
func postingsForValues(r iterReader, part int64, name string, f valueFilter) ([]uint64, error) {
	var refs []uint64
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
	} else {
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
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	// A series has one value per label name, so the lists of different values are disjoint.
	slices.Sort(refs)
	return refs, nil
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

// labelNames returns the distinct label names indexed in a partition.
func labelNames(r iterReader, part int64, into map[string]struct{}) error {
	prefix := postingsPartPrefix(nil, part)
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
		valid = it.SeekGE(prefixEnd(postingsNamePrefix(nil, part, name)))
	}
	return it.Close()
}

// labelValues returns the distinct values of a label name indexed in a partition.
func labelValues(r iterReader, part int64, name string, into map[string]struct{}) error {
	prefix := postingsNamePrefix(nil, part, name)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
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
