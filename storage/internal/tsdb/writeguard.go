package tsdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
)

// What a full disk (or a read-only, vanished or failing one) does to the store, and why.
//
// Pebble does not survive running out of space: a failed write of its WAL poisons the log
// writer (the next record or rotation panics, a failed commit is Fatalf), a failed MANIFEST
// write is Fatalf, and a failing flush is retried in a loop while the memtables fill until every
// commit blocks in a write stall, for good. So the store must stop writing into Pebble before
// Pebble runs out of space, and never hand a caller a hang.
//
//   - The sample log is the point of refusal. A commit writes its log record before it changes
//     anything in memory; when the write fails (ENOSPC, EROFS, EIO, a vanished directory), the
//     commit fails with ErrUnavailable, its Pebble batch is dropped and nothing of it is visible.
//     The segment holding the failed (maybe torn) record is closed and the next record starts a
//     new one: replay stops a segment at a torn record and goes on with the next segment.
//   - A reserve of free space keeps Pebble away from ENOSPC: while the filesystem has less than
//     Options.MinFreeSpace free (statfs, checked at most every spaceCheckInterval and after
//     every spaceCheckBytes of log), commits are refused before they touch the log or Pebble.
//     Flushes, compactions and checkpoints already under way have the reserve to finish in.
//   - Pebble's own failures: a failing flush (a BackgroundError between FlushBegin and FlushEnd)
//     refuses commits until a flush succeeds, so that no commit walks into the write stall the
//     failed flushes lead to. A failed Pebble commit or WAL sync cannot heal without reopening
//     Pebble: the store then refuses writes until it is restarted, and says so.
//   - While refusing, the store stops calling Pebble for writes: no commit, no checkpoint (except
//     one that frees the log's space when the reserve is short; see freeLogSpace), no retention.
//     Reads go on: queries take a Pebble snapshot and copy the open heads under headMu, which no
//     writer holds across I/O, and never wait for writeMu.
//   - It heals without a restart: the reserve is re-checked on every refused commit (rate-limited)
//     and by the background loop; a log write fault lets one commit through every probeInterval
//     to try again (its failure changes nothing, so it is safe to retry); a flush fault clears
//     when Pebble's retried flush succeeds.
//
// The state is published as Writable/RefusalReason (the extension's metricstor_storage_writable
// gauge) and logged once per transition, not per refused request.

const (
	// spaceCheckInterval bounds how stale the free-space figure may be while writable.
	spaceCheckInterval = 100 * time.Millisecond
	// spaceCheckBytes re-checks free space after this many bytes of log since the last check.
	spaceCheckBytes = 1 << 20
	// defaultProbeInterval is how often a refusing store retries a write that failed.
	defaultProbeInterval = time.Second
	// defaultMinFreeSpaceCap is the largest default reserve; the default is also at most a
	// quarter of the filesystem, so that a small volume is still usable.
	defaultMinFreeSpaceCap = 64 << 20
)

// refusal causes, in the order they are reported when several hold.
const (
	causeBroken = iota // Pebble failed a commit or a WAL sync: only a restart heals it
	causeLog           // the sample log could not be written
	causeFlush         // Pebble's flushes fail
	causeSpace         // free space is below the reserve
	numCauses
)

var causeNames = [numCauses]string{"pebble_failed", "log_write_failed", "flush_failed", "low_disk_space"}

// writeGuard decides whether the DB accepts writes. Its fast path is one atomic load.
type writeGuard struct {
	db       *DB
	refusing atomic.Bool // any cause set

	mu        sync.Mutex
	causes    [numCauses]error // why, per cause; nil when the cause does not hold
	since     time.Time        // when the current refusal began
	lastProbe time.Time        // last time a refused write was let through to try again
	refused   atomic.Int64     // commits refused since the DB opened

	// free-space accounting: reserve and checkEvery are set before the DB is shared
	reserve     uint64        // bytes that must stay free; 0 when the filesystem cannot tell
	checkEvery  time.Duration // spaceCheckInterval; tests set 0 to check on every commit
	nextCheck   atomic.Int64  // unix nanoseconds of the next due statfs
	bytesAtLast atomic.Int64  // logWritten at the last statfs
	logWritten  atomic.Int64  // bytes written to the sample log since Open

	flushErr atomic.Pointer[error] // the error of the last flush, when it failed
}

func (g *writeGuard) init(db *DB) { g.db, g.checkEvery = db, spaceCheckInterval }

// admit returns nil when a commit may proceed, or an error wrapping ErrUnavailable. probe
// reports that the commit is let through to find out whether a failed write works again.
func (g *writeGuard) admit() (probe bool, err error) {
	if !g.refusing.Load() && !g.spaceCheckDue() {
		return false, nil
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkSpaceLocked(now, false)
	if !g.refusing.Load() {
		return false, nil
	}
	if g.onlyCauseLocked(causeLog) && now.Sub(g.lastProbe) >= g.db.opts.ProbeInterval {
		g.lastProbe = now
		return true, nil
	}
	g.refused.Add(1)
	return false, g.errLocked()
}

func (g *writeGuard) spaceCheckDue() bool {
	return g.reserve > 0 && (time.Now().UnixNano() >= g.nextCheck.Load() ||
		g.logWritten.Load()-g.bytesAtLast.Load() >= spaceCheckBytes)
}

// checkSpaceLocked refreshes the space cause from statfs when due (or when force).
func (g *writeGuard) checkSpaceLocked(now time.Time, force bool) {
	if g.reserve == 0 {
		return
	}
	written := g.logWritten.Load()
	if !force && now.UnixNano() < g.nextCheck.Load() && written-g.bytesAtLast.Load() < spaceCheckBytes {
		return
	}
	g.nextCheck.Store(now.Add(g.checkEvery).UnixNano())
	g.bytesAtLast.Store(written)
	du, err := g.db.opts.FS.GetDiskUsage(g.db.dir)
	switch {
	case err != nil:
		// The directory vanished, or the filesystem went away: nothing can be written there.
		g.setLocked(causeSpace, fmt.Errorf("cannot read the free space of %s: %w", g.db.dir, err))
	case du.AvailBytes < g.reserve:
		g.setLocked(causeSpace, fmt.Errorf("%s has %s free, below the reserve of %s (min_free_space_mib)",
			g.db.dir, mib(du.AvailBytes), mib(g.reserve)))
	case g.causes[causeSpace] != nil && du.AvailBytes < g.reserve+g.reserve/8:
		// Hysteresis: a store that stops at the reserve resumes a little above it, so that a
		// disk hovering at the line does not flip the state with every request.
	default:
		g.setLocked(causeSpace, nil)
	}
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// set records that cause holds (err != nil) or no longer holds (nil), and logs a transition
// of the store between accepting and refusing writes.
func (g *writeGuard) set(cause int, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.setLocked(cause, err)
}

func (g *writeGuard) setLocked(cause int, err error) {
	was, had := g.refusing.Load(), g.causes[cause] != nil
	g.causes[cause] = err
	now := false
	for _, c := range g.causes {
		now = now || c != nil
	}
	g.refusing.Store(now)
	log := g.db.logger
	switch {
	case !was && now:
		g.since = time.Now()
		g.lastProbe = g.since
		log.Warn("Storage is refusing writes; they are answered as retryable errors until the cause is gone",
			zap.String("cause", causeNames[cause]), zap.Error(err))
	case was && !now:
		log.Info("Storage accepts writes again",
			zap.Duration("refused_for", time.Since(g.since)), zap.Int64("commits_refused", g.refused.Load()))
	case was && now && err != nil && !had:
		log.Warn("Storage is refusing writes for one more reason", zap.String("cause", causeNames[cause]), zap.Error(err))
	}
}

func (g *writeGuard) onlyCauseLocked(cause int) bool {
	for c, err := range g.causes {
		if (c == cause) != (err != nil) {
			return false
		}
	}
	return true
}

// errLocked is the error refused commits return: ErrUnavailable and the first cause.
func (g *writeGuard) errLocked() error {
	for _, err := range g.causes {
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return nil
}

// Writable reports whether the DB accepts writes now, and if not, why (an error wrapping
// ErrUnavailable).
func (db *DB) Writable() (bool, error) {
	g := &db.guard
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.refusing.Load() {
		return true, nil
	}
	return false, g.errLocked()
}

// CommitsRefused is the number of commits refused because the DB could not write.
func (db *DB) CommitsRefused() int64 { return db.guard.refused.Load() }

// poll re-checks what heals by itself (free space) from the background loop, so that the state
// and its gauge follow the disk even when no write comes in.
func (g *writeGuard) poll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.checkSpaceLocked(time.Now(), false)
}

// shortOfSpace reports whether free space is the reason writes are refused (and the only one).
func (g *writeGuard) shortOfSpace() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.onlyCauseLocked(causeSpace)
}

// initReserve sets the reserve: opts.MinFreeSpace, or by default the smaller of
// defaultMinFreeSpaceCap and a quarter of the filesystem. 0 when the filesystem cannot tell its
// free space (an in-memory one), or when disabled (a negative MinFreeSpace).
func (g *writeGuard) initReserve() {
	if g.db.opts.MinFreeSpace < 0 {
		return
	}
	du, err := g.db.opts.FS.GetDiskUsage(g.db.dir)
	if err != nil {
		if !errors.Is(err, vfs.ErrUnsupported) {
			g.db.logger.Warn("Cannot read the free space of the data directory; the free-space reserve is off", zap.Error(err))
		}
		return
	}
	g.reserve = uint64(g.db.opts.MinFreeSpace)
	if g.reserve == 0 {
		g.reserve = min(defaultMinFreeSpaceCap, du.TotalBytes/4)
	}
	g.checkSpaceLocked(time.Now(), true)
}

// Reserve is the free space below which writes are refused; 0 when there is no reserve.
func (db *DB) Reserve() uint64 {
	db.guard.mu.Lock()
	defer db.guard.mu.Unlock()
	return db.guard.reserve
}

// eventListener turns Pebble's flush failures into a refusal: a failing flush is retried in a
// loop, and once the memtables are full every commit blocks in a write stall until one
// succeeds, so commits are refused from the first failure until a flush succeeds.
func (g *writeGuard) eventListener() pebble.EventListener {
	return pebble.EventListener{
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err != nil {
				// Maybe only an empty flush; a failed one is reported to BackgroundError next.
				g.flushErr.Store(&info.Err)
				return
			}
			g.flushErr.Store(nil)
			if g.refusing.Load() {
				g.set(causeFlush, nil)
			}
		},
		BackgroundError: func(err error) {
			if p := g.flushErr.Load(); p != nil && *p == err {
				g.mu.Lock()
				if g.causes[causeFlush] == nil {
					g.setLocked(causeFlush, fmt.Errorf("pebble cannot flush its memtable: %w", err))
				}
				g.mu.Unlock()
				return
			}
			// A failed compaction is retried and blocks nothing by itself; the reserve is what
			// keeps it from recurring. Logged at debug: Pebble retries in a loop.
			g.db.logger.Debug("Pebble background error", zap.Error(err))
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			g.db.logger.Debug("Pebble write stall", zap.String("reason", info.Reason))
		},
	}
}

// ctxMutex is a mutex whose Lock can give up when a context ends, so that a commit waiting
// behind a stuck one returns to its caller before the caller's deadline instead of hanging.
type ctxMutex struct{ ch chan struct{} }

func newCtxMutex() ctxMutex { return ctxMutex{ch: make(chan struct{}, 1)} }

func (m ctxMutex) Lock()   { m.ch <- struct{}{} }
func (m ctxMutex) Unlock() { <-m.ch }

// LockContext locks, or returns an error wrapping ErrUnavailable once ctx is done.
func (m ctxMutex) LockContext(ctx context.Context) error {
	select {
	case m.ch <- struct{}{}:
		return nil
	default:
	}
	select {
	case m.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: another write is still in progress: %v", ErrUnavailable, context.Cause(ctx))
	}
}

// setBroken records that Pebble failed a write in a way only reopening it heals, and returns
// the error for the caller: ErrUnavailable, as every later commit gets until a restart.
func (db *DB) setBroken(err error) error {
	db.guard.set(causeBroken, fmt.Errorf("%w (restart to recover; the sample log keeps what was acknowledged)", err))
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// brokenErr is the error of a DB whose Pebble failed, nil otherwise.
func (db *DB) brokenErr() error {
	db.guard.mu.Lock()
	defer db.guard.mu.Unlock()
	if err := db.guard.causes[causeBroken]; err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
