package tsdb

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every family has its own first byte, so a family's range [fam, fam+1) holds its keys only.
func TestKeyFamiliesAreDistinct(t *testing.T) {
	fams := []byte{famLabelsByRef, famPartSeries, famPostings, famChunks, famMetadata, famExemplars, famSeriesHashes, famLog}
	seen := map[byte]bool{}
	for _, f := range fams {
		assert.False(t, seen[f], "family byte %q used twice", f)
		seen[f] = true
	}
	keys := map[byte][]byte{
		famLabelsByRef:  labelsByRefKey(nil, 1),
		famPartSeries:   partSeriesKey(nil, 1, 1),
		famPostings:     putRef(postingsValuePrefix(nil, 1, "a", "b"), 1),
		famChunks:       chunkKey(nil, 1, 1, 1),
		famMetadata:     metadataKey(nil, "up"),
		famExemplars:    putInt64(exemplarSeriesPrefix(nil, 1, 1), 1),
		famSeriesHashes: seriesHashKey(nil, 1, 1),
	}
	for fam, k := range keys {
		assert.Equal(t, fam, k[0], "key %x starts with its family", k)
	}
}

var int64Edges = []int64{math.MinInt64, math.MinInt64 + 1, -1 << 40, -2, -1, 0, 1, 2, 1 << 40, math.MaxInt64 - 1, math.MaxInt64}

// Signed integers (partitions, timestamps) round-trip, and byte order is numeric order: negative
// before zero before positive, as FORMAT.md says (the sign bit is flipped).
func TestKeySignedIntegers(t *testing.T) {
	var enc [][]byte
	for _, v := range int64Edges {
		b := putInt64(nil, v)
		require.Len(t, b, 8)
		assert.Equal(t, v, getInt64(b))
		enc = append(enc, b)
	}
	for i := 1; i < len(enc); i++ {
		assert.Negative(t, bytes.Compare(enc[i-1], enc[i]), "%d sorts before %d", int64Edges[i-1], int64Edges[i])
	}
}

// Strings are length-prefixed: they round-trip whatever bytes they hold, and no string's encoding
// is a prefix of another's, so a prefix scan for one name or value never meets a longer one that
// starts with it ("a" against "ab"). The price: strings sort by length first ("b" before "ab").
func TestKeyStrings(t *testing.T) {
	strs := []string{"", "a", "ab", "b", "\x00", "\xff\xff", strings.Repeat("x", 300)}
	for _, s := range strs {
		b := putString([]byte("pre"), s)
		got, rest, err := getString(b[3:])
		require.NoError(t, err)
		assert.Equal(t, s, got)
		assert.Empty(t, rest)
	}
	for _, s := range strs {
		for _, o := range strs {
			if s != o {
				assert.False(t, bytes.HasPrefix(putString(nil, o), putString(nil, s)), "%q is a prefix of %q", s, o)
			}
		}
	}
	order := func(a, b string) int { return bytes.Compare(putString(nil, a), putString(nil, b)) }
	assert.Negative(t, order("a", "ab"))
	assert.Negative(t, order("a", "b"))
	assert.Negative(t, order("b", "ab"), "shorter first")

	_, _, err := getString([]byte{5, 'a'})
	assert.ErrorIs(t, err, errCorruptKey, "length past the end")
	_, _, err = getString(nil)
	assert.ErrorIs(t, err, errCorruptKey, "no length")

	ls := labels.FromStrings("__name__", "up", "a", "", "job", "x\x00y")
	got, err := decodeLabels(encodeLabels(nil, ls))
	require.NoError(t, err)
	assert.Equal(t, ls, got)
	_, err = decodeLabels(encodeLabels(nil, ls)[:5])
	assert.ErrorIs(t, err, errCorruptKey)
}

// Chunk keys round-trip and sort by (partition, ref, mint), negative partitions and timestamps
// first, so a series' chunks in a partition are one contiguous range in time order.
func TestChunkKeyOrder(t *testing.T) {
	type tuple struct {
		part int64
		ref  uint64
		mint int64
	}
	var tuples []tuple
	for _, part := range []int64{math.MinInt64, -3, -1, 0, 1, 7, math.MaxInt64} {
		for _, ref := range []uint64{0, 1, 255, 256, 1 << 40, math.MaxUint64} {
			for _, mint := range []int64{math.MinInt64, -1000, -1, 0, 1, 1000, math.MaxInt64} {
				tuples = append(tuples, tuple{part, ref, mint})
			}
		}
	}
	keys := make([][]byte, len(tuples))
	for i, tu := range tuples {
		keys[i] = chunkKey(nil, tu.part, tu.ref, tu.mint)
		part, ref, mint, err := parseChunkKey(keys[i])
		require.NoError(t, err)
		assert.Equal(t, tu, tuple{part, ref, mint})
		assert.True(t, bytes.HasPrefix(keys[i], chunkSeriesPrefix(nil, tu.part, tu.ref)))
		assert.True(t, bytes.HasPrefix(keys[i], chunkPartPrefix(nil, tu.part)))
	}
	// tuples were built in (part, ref, mint) order; shuffling by sorting the keys must give it back.
	perm := make([]int, len(keys))
	for i := range perm {
		perm[i] = len(perm) - 1 - i
	}
	sort.SliceStable(perm, func(a, b int) bool { return bytes.Compare(keys[perm[a]], keys[perm[b]]) < 0 })
	for i, p := range perm {
		require.Equal(t, i, p, "key of %+v sorts at %d", tuples[p], i)
	}

	_, _, _, err := parseChunkKey(keys[0][:24])
	assert.ErrorIs(t, err, errCorruptKey)
	_, _, _, err = parseChunkKey(append([]byte{famPostings}, keys[0][1:]...))
	assert.ErrorIs(t, err, errCorruptKey)
}

// Postings keys round-trip; all keys of one partition, of one name in it and of one (name, value)
// are contiguous, and the scan of name "a" does not reach name "ab".
func TestPostingsKeys(t *testing.T) {
	type posting struct {
		part        int64
		name, value string
		ref         uint64
	}
	var ps []posting
	for _, part := range []int64{-1, 0, 1} {
		for _, name := range []string{"a", "ab", "b"} {
			for _, value := range []string{"", "x", "xy", "y"} {
				for _, ref := range []uint64{1, 2, 300} {
					ps = append(ps, posting{part, name, value, ref})
				}
			}
		}
	}
	keys := make([][]byte, len(ps))
	for i, p := range ps {
		keys[i] = putRef(postingsValuePrefix(nil, p.part, p.name, p.value), p.ref)
		name, value, ref, err := parsePostingsKey(keys[i])
		require.NoError(t, err)
		assert.Equal(t, p, posting{p.part, name, value, ref})
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, bytes.Compare)
	for _, p := range ps {
		for _, prefix := range [][]byte{
			postingsPartPrefix(nil, p.part),
			postingsNamePrefix(nil, p.part, p.name),
			postingsValuePrefix(nil, p.part, p.name, p.value),
		} {
			var match []int
			for i, k := range sorted {
				if bytes.HasPrefix(k, prefix) {
					match = append(match, i)
				}
			}
			require.NotEmpty(t, match)
			assert.Equal(t, len(match)-1, match[len(match)-1]-match[0], "keys under %x are contiguous", prefix)
			end := prefixEnd(prefix)
			for i, k := range sorted {
				in := bytes.Compare(k, prefix) >= 0 && bytes.Compare(k, end) < 0
				assert.Equal(t, slices.Contains(match, i), in, "range [prefix, prefixEnd) is the prefix's keys")
			}
		}
		var underA int
		for _, k := range sorted {
			if bytes.HasPrefix(k, postingsNamePrefix(nil, p.part, "a")) {
				name, _, _, err := parsePostingsKey(k)
				require.NoError(t, err)
				assert.Equal(t, "a", name)
				underA++
			}
		}
		assert.Equal(t, 4*3, underA, "name a: 4 values, 3 refs")
	}
	partOrder := func(a, b int64) int {
		return bytes.Compare(postingsPartPrefix(nil, a), postingsPartPrefix(nil, b))
	}
	assert.Negative(t, partOrder(-1, 0), "negative partitions first")
	assert.Negative(t, partOrder(0, 1))

	_, _, _, err := parsePostingsKey(keys[0][:10])
	assert.ErrorIs(t, err, errCorruptKey)
}

// The other families round-trip as FORMAT.md lays them out.
func TestOtherKeys(t *testing.T) {
	k := labelsByRefKey(nil, 42)
	assert.Equal(t, []byte{famLabelsByRef, 0, 0, 0, 0, 0, 0, 0, 42}, k)
	assert.Negative(t, bytes.Compare(labelsByRefKey(nil, 255), labelsByRefKey(nil, 256)), "refs in numeric order")

	k = seriesHashKey(nil, 0xdeadbeef, 7)
	assert.Equal(t, famSeriesHashes, k[0])
	assert.Equal(t, putRef(putRef(nil, 0xdeadbeef), 7), k[1:])

	k = partSeriesKey(nil, -5, 9)
	assert.Equal(t, partSeriesPrefix(nil, -5), k[:9])
	assert.Equal(t, putRef(nil, 9), k[9:])
	assert.Negative(t, bytes.Compare(partSeriesKey(nil, -5, math.MaxUint64), partSeriesKey(nil, 0, 0)))

	assert.Equal(t, append([]byte{famMetadata}, "http_requests"...), metadataKey(nil, "http_requests"))

	k = putInt64(exemplarSeriesPrefix(nil, -1, 3), -20)
	assert.Equal(t, exemplarPartPrefix(nil, -1), k[:9])
	assert.Equal(t, int64(-20), getInt64(k[17:]))
	assert.Negative(t, bytes.Compare(k, putInt64(exemplarSeriesPrefix(nil, -1, 3), 20)), "exemplars in time order")

	assert.Equal(t, []byte{'a', 'c'}, prefixEnd([]byte{'a', 'b'}))
	assert.Equal(t, []byte{'b'}, prefixEnd([]byte{'a', 0xff}))
	assert.Nil(t, prefixEnd([]byte{0xff, 0xff}))
}

// The package ignores the errors of Set, Delete, DeleteRange and LogData on its batches because
// none of them is indexed (keys.go); this keeps it so.
func TestBatchesAreNotIndexed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.False(t, strings.Contains(string(b), ".NewIndexedBatch("), "%s: an indexed batch can fail Set; check every ignored batch error first (keys.go)", f)
	}
}
