package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"
)

// ApplyRetention drops every partition that ends before the newest sample minus the retention,
// then, while the database uses more disk than the size retention allows, the oldest
// partitions (never the newest). A partition is dropped whole with range deletions, so it
// costs no tombstone per sample, and its key ranges are compacted at once so that the space
// really returns.
func (db *DB) ApplyRetention(ctx context.Context) error {
	var err error
	if maxT := db.maxT.Load(); db.opts.Retention > 0 && maxT != math.MinInt64 {
		err = db.dropPartitionsBefore(ctx, maxT-db.opts.Retention.Milliseconds())
	}
	if db.opts.RetentionSize > 0 || db.opts.RetentionSizeFraction > 0 {
		err = errors.Join(err, db.applySizeRetention(ctx))
	}
	return err
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
	db.compactDropped(ctx, drop)
	return nil
}

// compactDropped compacts the key ranges of dropped partitions (ascending), so that their
// space returns now rather than whenever compactions reach them. It runs outside writeMu, so
// appends go on meanwhile. The dropped partitions are the oldest ones, so one range per key
// family covers them all (partitions between them without data have no keys).
func (db *DB) compactDropped(ctx context.Context, drop []int64) {
	first, last := drop[0], drop[len(drop)-1]
	for _, prefix := range []func([]byte, int64) []byte{
		chunkPartPrefix, postingsPartPrefix, postingListPartPrefix, partSeriesPrefix, exemplarPartPrefix,
	} {
		if err := db.pdb.Compact(ctx, prefix(nil, first), prefixEnd(prefix(nil, last)), false); err != nil {
			db.logger.Warn("Compaction after retention failed", zap.Error(err))
		}
	}
}

// applySizeRetention drops the oldest partitions while the database uses more bytes than the
// size retention allows. The newest partition is never dropped: it holds the data being
// written, so when it alone outgrows the limit the database stays above it (and says so).
//
// Each round picks the oldest partitions whose estimated size covers the excess (at least one),
// drops and compacts them, and measures again: estimates miss what is still in memtables and
// the space shared by all partitions (series labels, Pebble's WAL, the sample log).
func (db *DB) applySizeRetention(ctx context.Context) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	for range db.Partitions() {
		limit, usage, err := db.sizeBudget()
		if err != nil {
			return err
		}
		db.retentionLimit.Store(int64(limit))
		if usage <= limit {
			if db.overSize.Swap(false) {
				db.logger.Info("Disk usage back under retention_size",
					zap.Uint64("disk_usage_bytes", usage), zap.Uint64("retention_size_bytes", limit))
			}
			return nil
		}
		drop, err := db.partitionsCovering(usage - limit)
		if err != nil {
			return err
		}
		if len(drop) == 0 {
			if !db.overSize.Swap(true) {
				db.logger.Warn("Disk usage exceeds retention_size with only the newest partition left; "+
					"it is never dropped (a larger retention_size or a shorter partition_duration helps)",
					zap.Uint64("disk_usage_bytes", usage), zap.Uint64("retention_size_bytes", limit))
			}
			return nil
		}
		dropped, err := db.dropPartitionsLocked((drop[len(drop)-1] + 1) * db.partMs)
		if err != nil {
			return err
		}
		if len(dropped) == 0 {
			return nil
		}
		db.stats.PartitionsDroppedBySize.Add(int64(len(dropped)))
		db.compactDropped(ctx, dropped)
		db.logger.Info("Dropped the oldest partitions to stay under retention_size",
			zap.Int("partitions", len(dropped)), zap.Uint64("disk_usage_bytes", usage),
			zap.Uint64("retention_size_bytes", limit))
	}
	return nil
}

// sizeBudget returns the size retention in bytes and the bytes the database counts against it.
// The usage leaves out Pebble's tables that are already on their way out (obsolete, or kept only
// for a running query) and the output of running compactions, whose inputs will go: counting
// them right after a drop would drop more partitions than needed.
func (db *DB) sizeBudget() (limit, usage uint64, err error) {
	m := db.pdb.Metrics()
	usage = m.DiskSpaceUsage() + db.sampleLogSize()
	leaving := m.Table.Local.ObsoleteSize + m.Table.Local.ZombieSize + uint64(max(m.Compact.InProgressBytes, 0))
	usage -= min(leaving, usage)
	limit = uint64(db.opts.RetentionSize)
	if f := db.opts.RetentionSizeFraction; f > 0 {
		du, err := db.opts.FS.GetDiskUsage(db.dir)
		if err == nil && du.TotalBytes == 0 {
			err = errors.New("reported as 0 bytes") // never a reason to drop everything
		}
		if err != nil {
			return 0, 0, fmt.Errorf("retention_size: size of the filesystem of %q: %w", db.dir, err)
		}
		limit = uint64(f * float64(du.TotalBytes))
	}
	return limit, usage, nil
}

// CheckRetentionSize computes the size retention once, so that a percentage on a filesystem
// whose size cannot be read fails at start-up rather than at every retention run.
func (db *DB) CheckRetentionSize() error {
	if db.opts.RetentionSizeFraction <= 0 {
		return nil
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	limit, _, err := db.sizeBudget()
	if err == nil {
		db.retentionLimit.Store(int64(limit))
	}
	return err
}

// partitionsEndingBy returns the partitions whose every timestamp is below cutoff.
func (db *DB) partitionsEndingBy(cutoff int64) []int64 {
	db.partsMu.RLock()
	defer db.partsMu.RUnlock()
	var drop []int64
	for _, p := range db.parts {
		if (p+1)*db.partMs <= cutoff {
			drop = append(drop, p)
		}
	}
	return drop
}

// partitionsCovering returns the oldest partitions, never the newest, whose estimated disk
// size adds up to at least excess bytes; at least one when there is more than one partition.
func (db *DB) partitionsCovering(excess uint64) ([]int64, error) {
	db.partsMu.RLock()
	parts := slices.Clone(db.parts)
	db.partsMu.RUnlock()
	var (
		drop []int64
		sum  uint64
	)
	for _, p := range parts[:max(len(parts)-1, 0)] {
		drop = append(drop, p)
		for _, prefix := range [][]byte{
			chunkPartPrefix(nil, p), postingsPartPrefix(nil, p), postingListPartPrefix(nil, p), partSeriesPrefix(nil, p), exemplarPartPrefix(nil, p),
		} {
			n, err := db.pdb.EstimateDiskUsage(prefix, prefixEnd(prefix))
			if err != nil {
				return nil, err
			}
			sum += n
		}
		if sum >= excess {
			break
		}
	}
	return drop, nil
}

// DiskUsage is the bytes the database uses on disk: Pebble's files and the sample log.
func (db *DB) DiskUsage() uint64 {
	if db.acquire() != nil {
		return 0
	}
	defer db.release()
	return db.pdb.Metrics().DiskSpaceUsage() + db.sampleLogSize()
}

// RetentionSizeLimit is the size retention in bytes as last computed (it follows the free
// space when it is a fraction), or 0 when there is none or it was not computed yet.
func (db *DB) RetentionSizeLimit() int64 { return db.retentionLimit.Load() }

// sampleLogSize is the size of the sample log's segment files. A segment removed while it is
// measured counts as nothing.
func (db *DB) sampleLogSize() uint64 {
	fs := db.opts.FS
	dir := fs.PathJoin(db.dir, logDir)
	names, err := fs.List(dir)
	if err != nil {
		return 0
	}
	var n uint64
	for _, name := range names {
		st, err := fs.Stat(fs.PathJoin(dir, name))
		if err != nil {
			if !oserror.IsNotExist(err) {
				db.logger.Debug("Stat of a sample log segment failed", zap.Error(err))
			}
			continue
		}
		n += uint64(max(st.Size(), 0))
	}
	return n
}

func (db *DB) dropPartitionsLocked(cutoff int64) ([]int64, error) {
	if len(db.partitionsEndingBy(cutoff)) > 0 {
		// A checkpoint in parts first, with writes going on, so that the one under the lock
		// below writes only the heads that gained samples since.
		db.waitCheckpointInParts()
	}
	db.writeMu.Lock()
	defer db.writeMu.Unlock()

	drop := db.partitionsEndingBy(cutoff)
	if len(drop) == 0 {
		return nil, nil
	}
	// Write out the heads first: a crash must not replay logged samples into dropped partitions.
	if err := db.checkpointLocked(headsQuick); err != nil {
		return nil, err
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	for _, p := range drop {
		for _, prefix := range [][]byte{
			partSeriesPrefix(nil, p), postingsPartPrefix(nil, p), postingListPartPrefix(nil, p), chunkPartPrefix(nil, p), exemplarPartPrefix(nil, p),
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
		if s.head.open() && dropped(s.head.part) {
			s.mu.Lock()
			s.loaded = false
			s.mu.Unlock()
		}
		s.keepIndexed(func(p int64) bool { return !dropped(p) })
	})
	db.stats.PartitionsDropped.Add(int64(len(drop)))
	db.stats.RetentionRuns.Add(1)
	db.logger.Info("Dropped partitions past retention",
		zap.Int("partitions", len(drop)), zap.Int64("cutoff_ms", cutoff))

	return drop, nil
}
