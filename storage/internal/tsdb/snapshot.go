package tsdb

import (
	"fmt"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// Snapshot writes a consistent point-in-time copy of the database to dir, which must not exist or
// be an empty directory (Prometheus's API creates it before it asks for the snapshot; it is removed
// when the snapshot is refused, and Pebble removes what it wrote when it fails). The copy is
// a database directory of its own: Open on it (a Metricstor started with it as its data
// directory) answers as this one did when Snapshot returned.
//
// withHead (Prometheus's snapshot without skip_head): the open head chunks are written to Pebble
// under writeMu, and Pebble's checkpoint is taken before writeMu is released. Every commit
// acknowledged before Snapshot is then in Pebble, none after it is, and no commit is cut in two; the
// sample log holds nothing the checkpoint lacks (it was just emptied), so the copy needs no
// sample log. Commits wait twice: for an ordinary checkpoint first (the heads' encoding; its WAL
// sync runs without the lock), then for the heads written since, one WAL sync and Pebble's
// checkpoint (hard links to the tables, a copy of the WAL, at most a few memtables in size). The
// log line "Snapshot written" gives the sum as writes_waited (about a second in all at 100,000
// series that all gained samples, on a shared 2-core machine).
//
// Without the head: Pebble's checkpoint alone, while commits go on. It holds what Pebble holds —
// the heads as of the last checkpoint (at most checkpoint_interval old), every chunk cut since,
// histograms, metadata and exemplars — as after a power loss that kept Pebble but lost the sample
// log; a commit in flight may be in it in part.
func (db *DB) Snapshot(dir string, withHead bool) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	if err := prepareSnapshotDir(db.opts.FS, dir); err != nil {
		return err
	}
	// A snapshot writes to the data directory's disk (the heads, the copies of the WAL and the
	// MANIFEST): a store that refuses writes, most often for the free-space reserve, refuses it.
	if ok, why := db.Writable(); !ok {
		return fmt.Errorf("snapshot refused: %w", why)
	}
	start := time.Now()
	var locked time.Duration // how long the snapshot held writeMu, which commits wait for
	if withHead {
		// A checkpoint in parts first, with writes going on, so that the one under the lock
		// below writes only the heads that gained samples since, and writes wait less.
		db.waitCheckpointInParts()
		db.writeMu.Lock()
		lockedAt := time.Now()
		cp, err := db.beginCheckpointLocked(headsQuick)
		if err == nil {
			err = cp.finish(db)
		}
		if err == nil {
			// The checkpoint's synced batch made everything before it durable, so the WAL is
			// already flushed; WithFlushedWAL costs one empty record and keeps this true if the
			// checkpoint ever stops syncing.
			err = db.pdb.Checkpoint(dir, pebble.WithFlushedWAL())
		}
		locked = time.Since(lockedAt)
		db.writeMu.Unlock()
		if err != nil {
			return fmt.Errorf("snapshot to %q: %w", dir, err)
		}
	} else if err := db.pdb.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("snapshot to %q: %w", dir, err)
	}
	db.logger.Info("Snapshot written",
		zap.String("directory", dir), zap.Bool("with_head", withHead),
		zap.Duration("took", time.Since(start)), zap.Duration("writes_waited", locked))
	return nil
}

// prepareSnapshotDir removes dir when it is an empty directory: Pebble's checkpoint creates its
// directory and refuses one that exists.
func prepareSnapshotDir(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); oserror.IsNotExist(err) {
		return nil
	}
	names, err := fs.List(dir)
	if err != nil {
		return fmt.Errorf("snapshot directory %q: %w", dir, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("snapshot directory %q is not empty", dir)
	}
	if err := fs.Remove(dir); err != nil {
		return fmt.Errorf("snapshot directory %q: %w", dir, err)
	}
	return nil
}
