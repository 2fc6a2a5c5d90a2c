package tsdb

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestRefListsRoundTrip(t *testing.T) {
	// Operands concatenate, as Pebble's default merger leaves them.
	var v []byte
	v = appendRefList(v, []uint64{1, 2, 3, 1000, 1 << 40})
	v = appendRefList(v, []uint64{7})
	v = appendRefList(v, []uint64{2, 5})
	got, err := decodeRefLists(nil, v)
	require.NoError(t, err)
	require.Equal(t, []uint64{1, 2, 3, 1000, 1 << 40, 7, 2, 5}, got)

	for _, bad := range [][]byte{
		{0},                      // an operand of no refs
		{3, 1, 1},                // fewer refs than its count
		{1, 0x80},                // a ref's varint cut short
		{0xff, 0xff, 0xff, 0xff}, // a count's varint cut short
	} {
		_, err := decodeRefLists(nil, bad)
		require.ErrorIs(t, err, errCorruptKey, "%x", bad)
	}
}

// TestPostingListWriter: lists gathered over batches, each written as one operand per label
// pair, read back merged, sorted and without duplicates through the index reader.
func TestPostingListWriter(t *testing.T) {
	db, _ := openMem(t, Options{})
	var w postingListWriter
	write := func(series map[uint64][]string) {
		b := db.pdb.NewBatch()
		for ref, kv := range series {
			w.add(3, lbls(kv...), ref)
		}
		ops := len(w.keys)
		w.writeTo(b)
		require.Equal(t, uint32(ops), b.Count(), "one merge operand per list")
		require.True(t, w.empty())
		require.NoError(t, b.Commit(pebble.Sync))
	}
	write(map[uint64][]string{
		10: {"__name__", "up", "job", "a"},
		11: {"__name__", "up", "job", "b"},
		12: {"__name__", "cpu", "job", "a"},
	})
	write(map[uint64][]string{
		20: {"__name__", "up", "job", "a"},
		10: {"__name__", "up", "job", "a"}, // written again: harmless
		5:  {"__name__", "up", "job", "c"},
	})
	ir := db.index(db.pdb)
	for _, c := range []struct {
		ms   []string
		want []uint64
	}{
		{[]string{"__name__", "up"}, []uint64{5, 10, 11, 20}},
		{[]string{"job", "a"}, []uint64{10, 12, 20}},
		{[]string{"__name__", "up", "job", "a"}, []uint64{10, 20}},
		{[]string{"job", "nope"}, nil},
	} {
		got, err := ir.postingsForMatchers(3, matchersOf(c.ms...))
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%v", c.ms)
	}
	// A regex walks the values of the name.
	got, err := ir.postingsForValues(3, "job", valueFilter{match: func(v string) bool { return v != "b" }})
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 10, 12, 20}, got)
	// Other partitions see nothing.
	got, err = ir.postingsForMatchers(4, matchersOf("__name__", "up"))
	require.NoError(t, err)
	require.Empty(t, got)
}

func matchersOf(kv ...string) (ms []*labels.Matcher) {
	for i := 0; i < len(kv); i += 2 {
		ms = append(ms, eq(kv[i], kv[i+1]))
	}
	return ms
}

// TestNewSeriesIndexKeys pins what a new series costs in Pebble keys: its labels, its hash and
// its partition key, plus one merge operand per distinct label pair of the commit (the `i`
// family took one key per series and label).
func TestNewSeriesIndexKeys(t *testing.T) {
	db, _ := openMem(t, Options{})
	app := db.AppenderV2(t.Context())
	const n = 500
	for i := range n {
		ls := lbls("__name__", "node_cpu_seconds_total", "cpu", fmt.Sprint(i%4), "instance", fmt.Sprintf("host-%d", i/4), "job", "node")
		_, err := app.Append(0, ls, 0, 1000, float64(i), nil, nil, storage.AppendV2Options{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	// Keys written: n each for l, h and p; lists: 1 name + 4 cpu + n/4 instances + 1 job.
	want := 3*n + 1 + 4 + n/4 + 1
	var sets, merges int
	it, err := db.pdb.NewIter(nil)
	require.NoError(t, err)
	for it.First(); it.Valid(); it.Next() {
		switch it.Key()[0] {
		case famLabelsByRef, famSeriesHashes, famPartSeries:
			sets++
		case famPostingLists:
			merges++
		case famPostings:
			t.Fatalf("an `i` key was written: %x", it.Key())
		}
	}
	require.NoError(t, it.Close())
	require.Equal(t, want, sets+merges, "keys of %d new series", n)
}
