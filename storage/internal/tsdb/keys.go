package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// Key families. Every key starts with one of these bytes; FORMAT.md in the storage folder
// documents what each family holds and why. Integers in keys are big-endian so that byte order
// is numeric order; signed values (partitions, timestamps) have their sign bit flipped.
const (
	famLabelsByRef  byte = 'l' // l | ref                                 -> labels
	famPartSeries   byte = 'p' // p | partition | ref                     -> empty (all series of a partition)
	famPostings     byte = 'i' // i | partition | name | value | ref      -> empty (old inverted index, read only)
	famPostingLists byte = 'j' // j | partition | name | value            -> refs (inverted index; Pebble merges)
	famChunks       byte = 'c' // c | partition | ref | chunk mint        -> chunk
	famMetadata     byte = 'd' // d | metric family name                  -> metadata
	famExemplars    byte = 'e' // e | partition | ref | ts                -> exemplar
	famSeriesHashes byte = 'h' // h | labels hash | ref                   -> empty
	// famLog keys (w | seq -> samples) held the sample log inside Pebble before it moved to
	// segment files (wal.go, samplelog.go); a database written by that version may still hold
	// some, which Open replays and the next checkpoint deletes. Never written any more.
	famLog byte = 'w'
)

// Writes into a Pebble batch ignore the error of Set, Delete, DeleteRange and LogData
// (`_ = b.Set(...)`) throughout this package. That is safe because every batch here comes from
// DB.NewBatch, which is not indexed: in Pebble v2 those methods only append the record to the
// batch's buffer, and their one error is from adding the key to an indexed batch's skiplist
// (NewIndexedBatch, which this package never uses: TestBatchesAreNotIndexed). Errors of the
// write itself (disk full, closed DB) come from Apply/Commit, which are always checked.

var errCorruptKey = errors.New("corrupt key")

func putInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}

func getInt64(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

func putRef(b []byte, ref uint64) []byte { return binary.BigEndian.AppendUint64(b, ref) }

// putString appends a length-prefixed string, so that no byte value needs escaping and a
// name or value can never be confused with a prefix of another.
func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// getString decodes a string written by putString and returns the rest of b.
func getString(b []byte) (string, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return "", nil, errCorruptKey
	}
	return string(b[w : w+int(n)]), b[w+int(n):], nil
}

// encodeLabels is the canonical byte form of a label set: name, value, name, value, ... each
// length-prefixed, in the (sorted) order of labels.Labels.
func encodeLabels(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		b = putString(b, l.Name)
		b = putString(b, l.Value)
	})
	return b
}

func decodeLabels(b []byte) (labels.Labels, error) {
	builder := labels.NewScratchBuilder(8)
	for len(b) > 0 {
		name, rest, err := getString(b)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		value, rest, err := getString(rest)
		if err != nil {
			return labels.EmptyLabels(), err
		}
		builder.Add(name, value)
		b = rest
	}
	return builder.Labels(), nil
}

func seriesHashKey(b []byte, hash, ref uint64) []byte {
	return putRef(putRef(append(b, famSeriesHashes), hash), ref)
}

func labelsByRefKey(b []byte, ref uint64) []byte {
	return putRef(append(b, famLabelsByRef), ref)
}

func partSeriesPrefix(b []byte, part int64) []byte {
	return putInt64(append(b, famPartSeries), part)
}

func partSeriesKey(b []byte, part int64, ref uint64) []byte {
	return putRef(partSeriesPrefix(b, part), ref)
}

func postingsPartPrefix(b []byte, part int64) []byte {
	return putInt64(append(b, famPostings), part)
}

func postingsNamePrefix(b []byte, part int64, name string) []byte {
	return putString(postingsPartPrefix(b, part), name)
}

func postingsValuePrefix(b []byte, part int64, name, value string) []byte {
	return putString(postingsNamePrefix(b, part, name), value)
}

func postingListPartPrefix(b []byte, part int64) []byte {
	return putInt64(append(b, famPostingLists), part)
}

func postingListNamePrefix(b []byte, part int64, name string) []byte {
	return putString(postingListPartPrefix(b, part), name)
}

func postingListKey(b []byte, part int64, name, value string) []byte {
	return putString(postingListNamePrefix(b, part, name), value)
}

// parsePostingsKey splits i | partition | name | value | ref.
func parsePostingsKey(k []byte) (name, value string, ref uint64, err error) {
	if len(k) < 1+8+8 || k[0] != famPostings {
		return "", "", 0, errCorruptKey
	}
	rest := k[9:]
	if name, rest, err = getString(rest); err != nil {
		return "", "", 0, err
	}
	if value, rest, err = getString(rest); err != nil {
		return "", "", 0, err
	}
	if len(rest) != 8 {
		return "", "", 0, errCorruptKey
	}
	return name, value, binary.BigEndian.Uint64(rest), nil
}

func chunkPartPrefix(b []byte, part int64) []byte {
	return putInt64(append(b, famChunks), part)
}

func chunkSeriesPrefix(b []byte, part int64, ref uint64) []byte {
	return putRef(chunkPartPrefix(b, part), ref)
}

func chunkKey(b []byte, part int64, ref uint64, mint int64) []byte {
	return putInt64(chunkSeriesPrefix(b, part, ref), mint)
}

// parseChunkKey splits c | partition | ref | mint.
func parseChunkKey(k []byte) (part int64, ref uint64, mint int64, err error) {
	if len(k) != 1+8+8+8 || k[0] != famChunks {
		return 0, 0, 0, fmt.Errorf("%w: chunk key of %d bytes", errCorruptKey, len(k))
	}
	return getInt64(k[1:9]), binary.BigEndian.Uint64(k[9:17]), getInt64(k[17:25]), nil
}

func metadataKey(b []byte, family string) []byte {
	return append(append(b, famMetadata), family...)
}

func exemplarPartPrefix(b []byte, part int64) []byte {
	return putInt64(append(b, famExemplars), part)
}

func exemplarSeriesPrefix(b []byte, part int64, ref uint64) []byte {
	return putRef(exemplarPartPrefix(b, part), ref)
}

// prefixEnd returns the smallest key greater than every key that starts with prefix, or nil
// when there is none (the prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
