package tsdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/zap"
)

// Merging closed chunks. Float chunks are cut at 120 samples so that the open head stays small
// and a query near "now" decodes little; on disk, each chunk also pays for its key, first value
// and line (about 20 bytes after zstd, 0.17 B/sample at 120 samples, a sixth of the day's
// 1.05 B/sample). Once a series' head has moved past a merge window (2 h of sample time, aligned,
// as Prometheus's head compaction makes 2 h blocks), the chunks that start in the window are
// closed for good but for out-of-order merges, and are rewritten as fewer chunks of up to
// maxMergedSamples samples.
//
// Invariants: a merge only joins chunks of one series, one partition and one window that sit
// next to each other in key order, never the head's chunk, and replaces them in one Pebble batch
// (atomic in Pebble's WAL: after a crash either the old chunks or the merged one are there, each
// holding the same samples). Chunks are read and encoded without writeMu; under it, every key's
// value is checked to be what was read before the batch is applied, so an out-of-order merge,
// retention or a head rewrite that changed them in between wins and the window is left alone.
// Merging is an optimisation: windows missed (the queue is in memory: Close merges what is left
// for a few seconds, a crash forgets it) only cost disk.
const (
	mergeWindowMs    = 2 * 3600 * 1000
	maxMergedSamples = 1920 // packed chunks allow 4096; 1920 is 2 h at 4 s scrapes
	mergeSlice       = 256  // windows merged per batch, and per hold of writeMu
)

// mergeWindow names the chunks of one series in one partition that start in [from, from+window).
type mergeWindow struct {
	ref  uint64
	part int64
	from int64
}

// mergeWindowMsFor is the window for a partition duration: 2 h, or the partition when shorter.
func mergeWindowMsFor(partMs int64) int64 { return min(mergeWindowMs, partMs) }

// windowStart is the start of the merge window holding t.
func (db *DB) windowStart(t int64) int64 {
	w := db.mergeWinMs
	s := t / w * w
	if s > t {
		s -= w
	}
	return s
}

// noteCut is called under writeMu when the float chunk c of series ref is cut for a sample at
// next in partition nextPart. When that sample starts a later window (or partition), no chunk of
// the series will start in c's window any more: the window is queued for merging.
func (db *DB) noteCut(ref uint64, c *chunkBuilder, next, nextPart int64) {
	if c.floats == 0 || db.opts.noMerge {
		return // histogram chunks are cut by size already
	}
	from := db.windowStart(c.mint)
	if nextPart == c.part && db.windowStart(next) == from {
		return
	}
	db.mergeQ = append(db.mergeQ, mergeWindow{ref: ref, part: c.part, from: from})
}

// kickMerge wakes the background loop if windows wait for merging.
func (db *DB) kickMerge() {
	if len(db.mergeQ) == 0 || db.opts.mergeOnlyAtClose {
		return
	}
	select {
	case db.mergeKick <- struct{}{}:
	default:
	}
}

// mergeQueued merges the queued windows, mergeSlice at a time. Runs in the background loop; it
// gives up when the DB stops (Close merges what is left, see mergeAtClose).
func (db *DB) mergeQueued() {
	if db.acquire() != nil {
		return
	}
	defer db.release()
	db.mergeDrain(db.stop, time.Time{})
}

// closeMergeTime bounds how long Close merges the windows still queued: the background loop
// keeps up with ingestion (merging costs a tenth of appending), so what is left is the last
// moments of a load, but a store stopped in the middle of a fast backfill must still stop soon.
const closeMergeTime = 5 * time.Second

// mergeAtClose merges what the background loop left queued, for closeMergeTime at most, so that
// a backfill followed by a stop ends merged. Caller is Close, after the background loop ended.
func (db *DB) mergeAtClose() {
	db.mergeDrain(nil, time.Now().Add(closeMergeTime))
}

// mergeDrain merges the queued windows until the queue is empty, stop is closed or the deadline
// (if any) passes; windows not merged then are forgotten.
func (db *DB) mergeDrain(stop <-chan struct{}, deadline time.Time) {
	// One pass at a time, so that a caller that returns from here knows every window queued
	// before it was looked at (tests rely on it).
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	db.writeMu.Lock()
	q := db.mergeQ
	db.mergeQ = nil
	db.writeMu.Unlock()
	for len(q) > 0 {
		if ok, _ := db.Writable(); !ok {
			return // the windows are forgotten: a store refusing writes has other worries
		}
		n := min(len(q), mergeSlice)
		if err := db.mergeWindows(q[:n]); err != nil {
			db.logger.Warn("Merging closed chunks failed", zap.Error(err))
			return
		}
		q = q[n:]
		if !deadline.IsZero() && time.Now().After(deadline) && len(q) > 0 {
			db.logger.Info("Left closed chunks unmerged to stop in time", zap.Int("windows", len(q)))
			return
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// plannedMerge is one merged chunk and the chunks it replaces (keys and values as read).
type plannedMerge struct {
	keys, vals [][]byte
	merged     []byte
	ref        uint64
	part       int64
}

// mergeWindows merges the chunks of each window: planned from an iterator without writeMu,
// applied under it once every value is checked to be unchanged.
func (db *DB) mergeWindows(ws []mergeWindow) error {
	plans, err := db.planMerges(ws)
	if err != nil || len(plans) == 0 {
		return err
	}
	return db.applyMerges(plans)
}

// applyMerges writes the planned merges whose chunks are unchanged, in one batch.
func (db *DB) applyMerges(plans []plannedMerge) error {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()
	if err := db.brokenErr(); err != nil {
		return nil
	}
	it, err := db.pdb.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	b := db.pdb.NewBatch()
	defer b.Close()
	removed := 0
	for i := range plans {
		p := &plans[i]
		ok, err := db.mergeStillValid(it, p)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		_ = b.Set(p.keys[0], p.merged, nil)
		for _, k := range p.keys[1:] {
			_ = b.Delete(k, nil)
		}
		removed += len(p.keys) - 1
	}
	if b.Empty() {
		return nil
	}
	// Not synced: the chunks it replaces are durable (or rebuilt from the sample log), and the
	// next sync of Pebble's WAL carries it; lost before that, the old chunks remain.
	if err := db.pdb.Apply(b, pebble.NoSync); err != nil {
		return db.setBroken(fmt.Errorf("merge chunks: %w", err))
	}
	db.stats.ChunksMerged.Add(int64(removed))
	return nil
}

// mergeStillValid reports whether p's chunks are still stored as read, with no other chunk
// between them (an out-of-order merge may rewrite a chunk to the same bytes and add one beside
// it), and none of them is the head of its series. Caller holds writeMu, which every writer of
// chunk keys holds; it is the iterator's own.
func (db *DB) mergeStillValid(it *pebble.Iterator, p *plannedMerge) (bool, error) {
	head := db.headStart(p.ref, p.part)
	for _, k := range p.keys {
		if _, _, mint, err := parseChunkKey(k); err != nil || mint >= head {
			return false, err
		}
	}
	last := p.keys[len(p.keys)-1]
	it.SetBounds(p.keys[0], append(last[:len(last):len(last)], 0))
	i := 0
	for valid := it.First(); valid; valid = it.Next() {
		if i == len(p.keys) || !bytes.Equal(it.Key(), p.keys[i]) || !bytes.Equal(it.Value(), p.vals[i]) {
			return false, nil
		}
		i++
	}
	return i == len(p.keys), it.Error()
}

// headStart is the first timestamp of the head chunk of series ref when the head is in part
// (stored chunks from there on belong to the head), or math.MaxInt64. A head that is not loaded
// is taken as it was: the guard only needs to be conservative.
func (db *DB) headStart(ref uint64, part int64) int64 {
	s := db.series.getByRef(ref)
	if s == nil {
		return math.MaxInt64
	}
	db.headMu.RLock()
	defer db.headMu.RUnlock()
	if s.head.open() && s.head.part == part {
		return s.head.mint
	}
	return math.MaxInt64
}

// planMerges reads the windows' chunks and encodes the merged ones. It writes nothing.
func (db *DB) planMerges(ws []mergeWindow) ([]plannedMerge, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{famChunks}, UpperBound: []byte{famChunks + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var (
		plans   []plannedMerge
		keys    [][]byte
		vals    [][]byte
		chunks  []storedChunk
		smps    []sample
		run     = make([]sample, 0, maxMergedSamples) // the samples of the chunks being joined
		lo, hi  []byte
		scratch decimalScratch
	)
	for _, w := range ws {
		lo = chunkKey(lo[:0], w.part, w.ref, w.from)
		hi = chunkKey(hi[:0], w.part, w.ref, w.from+db.mergeWinMs)
		keys, vals, chunks = keys[:0], vals[:0], chunks[:0]
		head := db.headStart(w.ref, w.part)
		for valid := it.SeekGE(lo); valid && bytes.Compare(it.Key(), hi) < 0; valid = it.Next() {
			_, _, mint, err := parseChunkKey(it.Key())
			if err != nil {
				return nil, err
			}
			if mint >= head {
				break // the head's stored copy, and nothing can follow it
			}
			v := it.Value()
			c, err := decodeChunkValue(mint, v, false)
			if err != nil {
				return nil, err
			}
			keys = append(keys, bytes.Clone(it.Key()))
			vals = append(vals, bytes.Clone(v))
			c.data = vals[len(vals)-1][len(v)-len(c.data):]
			chunks = append(chunks, c)
		}
		if err := it.Error(); err != nil {
			return nil, err
		}
		if len(chunks) < 2 {
			continue
		}
		// Runs of float chunks, each merged up to maxMergedSamples.
		start := 0
		run = run[:0]
		flush := func(end int) error {
			if end-start >= 2 {
				p, ok, err := mergeRun(w, keys[start:end], vals[start:end], run, &scratch)
				if err != nil {
					return err
				}
				if ok {
					plans = append(plans, p)
				}
			}
			start, run = end, run[:0]
			return nil
		}
		for i, c := range chunks {
			if !isFloatEncoding(c.enc) {
				if err := flush(i); err != nil {
					return nil, err
				}
				start = i + 1
				continue
			}
			smps, err = c.samples(smps[:0])
			if err != nil {
				return nil, err
			}
			if len(run)+len(smps) > maxMergedSamples {
				if err := flush(i); err != nil {
					return nil, err
				}
			}
			run = append(run, smps...)
		}
		if err := flush(len(chunks)); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// mergeRun encodes the samples of adjacent chunks as one closed chunk: packed when the values
// allow (as encodeStoredChunkValue decides for a cut chunk), XOR2 otherwise. ok is false when
// the samples do not follow each other strictly in time (chunks of a series never overlap; this
// is a guard).
func mergeRun(w mergeWindow, keys, vals [][]byte, smps []sample, sc *decimalScratch) (plannedMerge, bool, error) {
	for i := 1; i < len(smps); i++ {
		if smps[i].t <= smps[i-1].t {
			return plannedMerge{}, false, nil
		}
	}
	mint, maxt := smps[0].t, smps[len(smps)-1].t
	if _, _, kmint, err := parseChunkKey(keys[0]); err != nil || kmint != mint {
		return plannedMerge{}, false, err // the key names the first sample's time
	}
	prefix := binary.AppendUvarint([]byte{byte(encPacked)}, uint64(maxt-mint)) // as encodeStoredChunkValue writes it
	merged, ok := appendPackedSamples(prefix, smps, sc)
	if !ok {
		chk := chunkenc.NewXOR2Chunk()
		app, err := chk.Appender()
		if err != nil {
			return plannedMerge{}, false, err
		}
		for _, s := range smps {
			app.Append(s.st, s.t, s.f)
		}
		cb := chunkBuilder{part: w.part, mint: mint, maxt: maxt, floats: int32(len(smps))}
		cb.setOther(chk, app)
		merged = encodeChunkValue(nil, &cb)
	}
	return plannedMerge{
		keys:   append([][]byte(nil), keys...),
		vals:   append([][]byte(nil), vals...),
		merged: merged,
		ref:    w.ref,
		part:   w.part,
	}, true, nil
}

// isFloatEncoding reports whether a stored chunk holds float samples.
func isFloatEncoding(e chunkenc.Encoding) bool {
	return e == chunkenc.EncXOR || e == chunkenc.EncXOR2 || isDecimal(e)
}
