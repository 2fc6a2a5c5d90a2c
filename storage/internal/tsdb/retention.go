package tsdb

import (
	"context"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// ApplyRetention drops every partition that ends before the newest sample minus the retention.
// A partition is dropped whole with range deletions, so it costs no tombstone per sample.
func (db *DB) ApplyRetention(ctx context.Context) error {
	if db.opts.Retention <= 0 {
		return nil
	}
	maxT := db.maxT.Load()
	if maxT == math.MinInt64 {
		return nil
	}
	return db.dropPartitionsBefore(ctx, maxT-db.opts.Retention.Milliseconds())
}

// dropPartitionsBefore drops the partitions whose every timestamp is below cutoff.
func (db *DB) dropPartitionsBefore(ctx context.Context, cutoff int64) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	drop, err := db.dropPartitionsLocked(cutoff)
	if err != nil || len(drop) == 0 {
		return err
	}
	// Reclaim the space now rather than whenever compactions reach the range; outside
	// writeMu, so appends go on meanwhile.
	for _, p := range drop {
		for _, prefix := range [][]byte{chunkPartPrefix(nil, p), postingsPartPrefix(nil, p)} {
			if err := db.pdb.Compact(ctx, prefix, prefixEnd(prefix), false); err != nil {
				db.logger.Warn("Compaction after retention failed", zap.Error(err))
			}
		}
	}
	return nil
}

func (db *DB) dropPartitionsLocked(cutoff int64) ([]int64, error) {
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	db.partsMu.RLock()
	var drop []int64
	for _, p := range db.parts {
		if (p+1)*db.partMs <= cutoff {
			drop = append(drop, p)
		}
	}
	db.partsMu.RUnlock()
	if len(drop) == 0 {
		return nil, nil
	}
	// Write out the heads first: a crash must not replay logged samples into dropped partitions.
	if err := db.checkpointLocked(); err != nil {
		return nil, err
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, p := range drop {
		for _, prefix := range [][]byte{
			partSeriesPrefix(nil, p), postingsPartPrefix(nil, p), chunkPartPrefix(nil, p), exemplarPartPrefix(nil, p),
		} {
			_ = b.DeleteRange(prefix, prefixEnd(prefix), nil)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, err
	}
	db.partsMu.Lock()
	db.parts = db.parts[len(drop):]
	db.partsMu.Unlock()

	// Heads that point into a dropped partition are stale; forget them.
	dropped := func(p int64) bool { return p <= drop[len(drop)-1] }
	db.series.byRef.each(func(s *memSeries) {
		if s.head.chunk != nil && dropped(s.head.part) {
			s.mu.Lock()
			s.loaded = false
			s.mu.Unlock()
		}
		kept := s.indexed[:0]
		for _, p := range s.indexed {
			if !dropped(p) {
				kept = append(kept, p)
			}
		}
		s.indexed = kept
	})
	db.stats.PartitionsDropped.Add(int64(len(drop)))
	db.stats.RetentionRuns.Add(1)
	db.logger.Info("Dropped partitions past retention",
		zap.Int("partitions", len(drop)), zap.Int64("cutoff_ms", cutoff))

	return drop, nil
}
