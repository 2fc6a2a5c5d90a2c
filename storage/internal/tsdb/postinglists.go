package tsdb

import (
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// The inverted index is kept as lists: one `j` key per partition, label name and value, whose
// value is the refs of the series with that label pair. A batch adds its new series to a list with
// one Pebble merge operand (Pebble's default merger concatenates operands; compactions fold
// them), not with one key per series and label as the `i` family did: at 100k new series that
// was ~6 memtable inserts per series, and Pebble's inserting, flushing and compacting of those
// keys was most of the cost of a new series.
//
// An operand is self-delimiting, so that concatenated operands parse back one after another:
//
//	uvarint  n >= 1, the number of refs
//	uvarint  the first ref
//	n-1      uvarints: each ref minus the one before (refs in an operand ascend)
//
// Refs are handed out in increasing order, so consecutive new series cost a byte or two each.
// Different operands of a key may overlap (a series whose index entries fell out of
// memSeries.indexed writes them again): readers sort and drop duplicates.

// postingListWriter gathers the index entries of one Pebble batch, to be written as one merge
// operand per list. Whoever builds the batch calls writeTo before applying it.
type postingListWriter struct {
	index map[string]int // postingListKey -> its index in lists
	keys  []string
	lists [][]uint64 // the refs added by this batch to each list
	key   []byte
	buf   []byte
}

// add lists the series ref, with labels lset, in part.
func (w *postingListWriter) add(part int64, lset labels.Labels, ref uint64) {
	if w.index == nil {
		w.index = map[string]int{}
	}
	lset.Range(func(l labels.Label) {
		w.key = postingListKey(w.key[:0], part, l.Name, l.Value)
		// A lookup with string(w.key) does not allocate; only a list new to the batch does.
		i, ok := w.index[string(w.key)]
		if !ok {
			i = len(w.keys)
			key := string(w.key)
			w.index[key] = i
			w.keys = append(w.keys, key)
			if i < len(w.lists) {
				w.lists[i] = w.lists[i][:0] // a slice kept from an earlier batch
			} else {
				w.lists = append(w.lists, nil)
			}
		}
		w.lists[i] = append(w.lists[i], ref)
	})
}

// writeTo adds one merge operand per list to b and forgets the lists.
func (w *postingListWriter) writeTo(b *pebble.Batch) {
	for i, key := range w.keys {
		refs := w.lists[i]
		if !slices.IsSorted(refs) {
			slices.Sort(refs)
		}
		refs = slices.Compact(refs)
		w.key = append(w.key[:0], key...)
		w.buf = appendRefList(w.buf[:0], refs)
		_ = b.Merge(w.key, w.buf, nil) // the batch copies key and value
	}
	w.reset()
}

// reset forgets the lists gathered, for a batch that is not applied. The lists' slices are kept
// for the next batch; the keys are not, so that the map stays the size of one batch.
func (w *postingListWriter) reset() {
	clear(w.index)
	clear(w.keys)
	w.keys = w.keys[:0]
	if len(w.lists) > 1024 {
		w.lists = nil // a batch of unusually many lists: do not keep their memory
	}
}

// empty reports whether nothing was gathered since the last writeTo or reset.
func (w *postingListWriter) empty() bool { return len(w.keys) == 0 }

// appendRefList appends refs (ascending, at least one) as one operand.
func appendRefList(b []byte, refs []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(refs)))
	prev := uint64(0)
	for _, r := range refs {
		b = binary.AppendUvarint(b, r-prev)
		prev = r
	}
	return b
}

// decodeRefLists appends the refs of a list's value (one or more concatenated operands) to dst,
// in the order stored.
func decodeRefLists(dst []uint64, v []byte) ([]uint64, error) {
	for len(v) > 0 {
		n, w := binary.Uvarint(v)
		if w <= 0 || n == 0 || n > uint64(len(v)) {
			return dst, errCorruptKey
		}
		v = v[w:]
		prev := uint64(0)
		for range n {
			d, w := binary.Uvarint(v)
			if w <= 0 {
				return dst, errCorruptKey
			}
			v = v[w:]
			prev += d
			dst = append(dst, prev)
		}
	}
	return dst, nil
}
