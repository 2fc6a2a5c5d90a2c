package tsdb

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
)

// writeOutOfOrder merges samples older than their series' newest sample into the stored chunks.
// Each sample goes into the chunk that covers its time (the last chunk that starts at or before
// it, or the first chunk of the partition); that chunk is decoded, merged and encoded again, so
// chunks of a series never overlap and the read path stays a simple concatenation.
// Caller holds writeMu; the batch of the in-order samples has been applied.
func (db *DB) writeOutOfOrder(samples []pendingSample) error {
	slices.SortStableFunc(samples, func(a, b pendingSample) int {
		return cmp.Or(cmp.Compare(a.s.ref, b.s.ref), cmp.Compare(a.smp.t, b.smp.t))
	})
	if err := db.syncHeads(samples); err != nil {
		return err
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	var pl postingListWriter
	var merged int64
	for start := 0; start < len(samples); {
		s, part := samples[start].s, db.partition(samples[start].smp.t)
		end := start + 1
		for end < len(samples) && samples[end].s == s && db.partition(samples[end].smp.t) == part {
			end++
		}
		n, err := db.mergeIntoPartition(b, &pl, s, part, samples[start:end])
		if err != nil {
			return fmt.Errorf("merge out-of-order samples of series %d: %w", s.ref, err)
		}
		merged += n
		start = end
	}
	pl.writeTo(b)
	if err := b.Commit(pebble.Sync); err != nil {
		return db.setBroken(fmt.Errorf("commit out-of-order samples: %w", err))
	}
	db.stats.SamplesAppended.Add(merged)
	db.stats.SamplesOutOfOrder.Add(merged)
	return nil
}

// mergeIntoPartition merges samples (sorted by time, all in part) of series s.
func (db *DB) mergeIntoPartition(b *pebble.Batch, pl *postingListWriter, s *memSeries, part int64, samples []pendingSample) (int64, error) {
	if err := db.ensureIndexed(b, pl, s, part); err != nil {
		return 0, err
	}
	var chunks []storedChunk
	prefix := chunkSeriesPrefix(nil, part, s.ref)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, err
	}
	for it.First(); it.Valid(); it.Next() {
		_, _, mint, err := parseChunkKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		c, err := decodeChunkValue(mint, it.Value(), true)
		if err != nil {
			_ = it.Close()
			return 0, err
		}
		chunks = append(chunks, c)
	}
	if err := it.Close(); err != nil {
		return 0, err
	}

	// Group the samples by the chunk that covers them; -1 means "no chunk in the partition".
	var merged int64
	for start := 0; start < len(samples); {
		target := -1
		if len(chunks) > 0 {
			target = max(0, sortSearchLast(chunks, samples[start].smp.t))
		}
		end := start + 1
		for end < len(samples) && (target == -1 || max(0, sortSearchLast(chunks, samples[end].smp.t)) == target) {
			end++
		}
		var existing []sample
		if target >= 0 {
			if existing, err = chunks[target].samples(nil); err != nil {
				return merged, err
			}
			_ = b.Delete(chunkKey(nil, part, s.ref, chunks[target].mint), nil)
		}
		all, added := db.mergeSamples(existing, samples[start:end])
		var cb chunkBuilder
		emit := func(c *chunkBuilder) {
			_ = b.Set(chunkKey(nil, part, s.ref, c.mint), encodeChunkValue(nil, c), nil)
		}
		for _, smp := range all {
			if err := cb.append(smp, part, emit); err != nil {
				return merged, err
			}
		}
		if cb.dirty {
			emit(&cb)
		}
		merged += added
		start = end
	}
	// The head chunk may have been rewritten or split: reload it on next use.
	if s.head.open() && s.head.part == part {
		s.mu.Lock()
		s.loaded = false
		s.mu.Unlock()
	}
	return merged, nil
}

// sortSearchLast returns the index of the last chunk starting at or before t, or -1.
func sortSearchLast(chunks []storedChunk, t int64) int {
	i, _ := slices.BinarySearchFunc(chunks, t+1, func(c storedChunk, t int64) int { return cmp.Compare(c.mint, t) })
	return i - 1
}

// mergeSamples merges new samples (sorted) into existing ones (sorted). A new sample at the
// time of an existing one is dropped: silently when the values agree, counted as a duplicate
// otherwise.
func (db *DB) mergeSamples(existing []sample, add []pendingSample) ([]sample, int64) {
	out := make([]sample, 0, len(existing)+len(add))
	var added int64
	i := 0
	for _, ps := range add {
		for i < len(existing) && existing[i].t < ps.smp.t {
			out = append(out, existing[i])
			i++
		}
		last := len(out) - 1
		switch {
		case i < len(existing) && existing[i].t == ps.smp.t:
			if !existing[i].sameValue(ps.smp) {
				db.stats.RejectedDuplicate.Add(1)
			}
		case last >= 0 && out[last].t == ps.smp.t:
			if !out[last].sameValue(ps.smp) {
				db.stats.RejectedDuplicate.Add(1)
			}
		default:
			out = append(out, ps.smp)
			added++
		}
	}
	return append(out, existing[i:]...), added
}

// syncHeads writes the head chunks of the given samples' series that hold samples only the log
// has, so that merging can read them from Pebble. Caller holds writeMu.
func (db *DB) syncHeads(samples []pendingSample) error {
	b := db.pdb.NewBatch()
	defer b.Close()
	var synced []*memSeries
	for _, ps := range samples {
		s := ps.s
		if !s.unsynced || !s.head.dirty {
			continue
		}
		_ = b.Set(chunkKey(nil, s.head.part, s.ref, s.head.mint), encodeChunkValue(nil, &s.head), nil)
		synced = append(synced, s)
	}
	if len(synced) == 0 {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return db.setBroken(fmt.Errorf("write head chunks: %w", err))
	}
	db.headMu.Lock()
	for _, s := range synced {
		s.head.dirty = false
		s.unsynced = false // stays in db.unsynced until the next checkpoint, which skips it
	}
	db.headMu.Unlock()
	return nil
}
