// Package tsdb is Metricstor's time-series database: Prometheus's data model (series of float
// and histogram samples identified by label sets) laid over Pebble's keyspace. The key layout is
// documented in storage/FORMAT.md.
//
// Writes go through Appender (append.go) into per-series head chunks (head.go). A commit writes
// its float samples as one record of the sample log (wal.go); head chunks are written to their
// keys when they are cut and at checkpoints, and a reopened database replays the log onto the
// newest stored chunk of each series. Reads (querier.go) look at a Pebble snapshot plus the open
// head chunks copied from memory.
package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/metadata"
	"go.uber.org/zap"
)

// Options configure a DB. The zero value of a field means its default.
type Options struct {
	// Retention is how long samples are kept, measured back from the newest sample stored
	// (as Prometheus does), not from the wall clock. Whole partitions older than that are
	// dropped. 0 keeps everything.
	Retention time.Duration
	// RetentionSize bounds the bytes the database uses on disk (Pebble's files and the sample
	// log): the oldest partitions are dropped until it fits, except the newest one (see
	// retention.go). 0 disables it; see RetentionSizeFraction.
	RetentionSize int64
	// RetentionSizeFraction, when above 0, replaces RetentionSize by that fraction of the total
	// size of the filesystem that holds the database (as Prometheus's retention percentage).
	RetentionSizeFraction float64
	// Limits bound the series appenders may create (limits.go). The zero value sets none.
	Limits Limits
	// PartitionDuration is the time span of one partition. Default 24h.
	PartitionDuration time.Duration
	// OutOfOrderWindow is how far behind the newest sample of the database a sample that is
	// older than its series' newest sample may be and still be accepted. 0 rejects every
	// out-of-order sample with storage.ErrOutOfOrderSample.
	OutOfOrderWindow time.Duration
	// CacheSize is Pebble's block cache in bytes. Default 32 MiB.
	CacheSize int64
	// MemTableSize is the size of one Pebble memtable in bytes. Default 8 MiB: samples reach
	// Pebble only as cut chunks and checkpoints (the sample log is outside it); new series write
	// their index keys, and 4 MiB memtables made those cost 1.6x the CPU in compactions.
	MemTableSize uint64
	// RetentionInterval is how often retention and head garbage collection run. Default 1m.
	RetentionInterval time.Duration
	// CheckpointInterval bounds how long samples stay only in the sample log (wal.go) before
	// the head chunks are written out; with CheckpointBytes it bounds the replay after a crash.
	// Default 1h.
	CheckpointInterval time.Duration
	// LogSyncInterval is how often the sample log is fsynced when SyncCommits is off: what a
	// power loss may take of the float samples. Default 1m.
	LogSyncInterval time.Duration
	// CheckpointBytes checkpoints once the sample log holds that many bytes, or more where the
	// open heads are large (checkpointLogBytes). Default 64 MiB.
	CheckpointBytes int64
	// SyncCommits fsyncs the sample log on every commit, so that an acknowledged commit also
	// survives a power loss or a crash of the operating system. Without it a commit survives a
	// crash of the process (its record is written before Commit returns), and the log is made
	// durable every LogSyncInterval and at every checkpoint, as Prometheus's write-ahead log is
	// between segment syncs.
	SyncCommits bool
	// MinFreeSpace is the free space, in bytes, below which the DB refuses writes with
	// ErrUnavailable, so that Pebble's flushes and compactions never run out of space (see
	// writeguard.go). 0 means the smaller of 64 MiB and a quarter of the filesystem; negative
	// turns the reserve off. Filesystems that cannot tell their free space (in-memory ones)
	// have no reserve.
	MinFreeSpace int64
	// ProbeInterval is how often a DB that refuses writes after a failed write lets one commit
	// through to find out whether writing works again. Default 1s.
	ProbeInterval time.Duration
	// Logger receives lifecycle and degradation messages. Default: no logging.
	Logger *zap.Logger
	// FS replaces the OS filesystem (tests use vfs.NewMem and crash clones).
	FS vfs.FS
	// noMerge turns merging closed chunks off, for tests that pin the chunk layout or the size
	// on disk.
	noMerge bool
	// mergeOnlyAtClose keeps the background loop from merging, for the test of Close's.
	mergeOnlyAtClose bool
}

func (o *Options) withDefaults() Options {
	r := *o
	if r.PartitionDuration <= 0 {
		r.PartitionDuration = 24 * time.Hour
	}
	if r.CacheSize <= 0 {
		r.CacheSize = 32 << 20
	}
	if r.MemTableSize == 0 {
		r.MemTableSize = 8 << 20
	}
	if r.RetentionInterval <= 0 {
		r.RetentionInterval = time.Minute
	}
	if r.CheckpointInterval <= 0 {
		r.CheckpointInterval = defaultCheckpointInterval
	}
	if r.CheckpointBytes <= 0 {
		r.CheckpointBytes = defaultCheckpointBytes
	}
	if r.LogSyncInterval <= 0 {
		r.LogSyncInterval = defaultLogSyncInterval
	}
	if r.ProbeInterval <= 0 {
		r.ProbeInterval = defaultProbeInterval
	}
	if r.Logger == nil {
		r.Logger = zap.NewNop()
	}
	if r.FS == nil {
		r.FS = vfs.Default
	}
	return r
}

// Errors of this package; the others come from Prometheus's storage package.
var (
	// ErrClosed is returned by operations on a DB that is closed or closing.
	ErrClosed = errors.New("metricstor storage is not running")
	// ErrInvalidSample wraps why a sample can never be stored (empty or duplicate labels).
	ErrInvalidSample = errors.New("invalid sample")
	// ErrUnavailable wraps why the DB refuses writes for now (the disk is full, the directory is
	// read-only or gone, an I/O error). Nothing of the refused commit is stored; the same data may
	// be accepted once the cause is gone, without a restart.
	ErrUnavailable = errors.New("metricstor storage is refusing writes")
	// ErrLimitExceeded wraps which configured limit a series or sample exceeds (labels per series,
	// label name or value length, active series). It is permanent for that series.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrUnknownSeriesRef is returned by Append given a series ref without labels when no series
	// in memory has that ref (head GC dropped it since, or the ref is not this DB's). Nothing was
	// appended: append again with the labels.
	ErrUnknownSeriesRef = errors.New("series ref not in memory, append it with its labels")
)

// DB is the database. All methods are safe for concurrent use.
type DB struct {
	dir    string
	opts   Options
	partMs int64 // partition duration in milliseconds; never changes
	pdb    *pebble.DB
	cache  *pebble.Cache
	logger *zap.Logger

	// lifecycle: closed is set under lifeMu; every operation that touches pdb holds inflight.
	lifeMu   sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	// isClosed mirrors closed for the per-sample path (Appender.admit), which touches no Pebble
	// state and so need not hold inflight: reading an atomic that is written once costs nothing,
	// where lifeMu and inflight are shared counters that every append would write.
	isClosed atomic.Bool

	// writeMu serialises the encoding and application of commits, so that the chunk bytes a
	// commit writes are always a superset of those of the commit before it. It also guards the
	// head state of every memSeries and the partition list's additions. A commit may wait for
	// it only until its context ends (LockContext).
	writeMu ctxMutex
	// headMu guards what queries read of the heads (memSeries.head, cuts, unsynced):
	// writers hold it, under writeMu, only while they change those in memory, never across
	// I/O, so a query never waits for a write that is stuck on the disk. Queries hold it for
	// reading while they take their Pebble snapshot and copy the heads, so that the two agree.
	headMu sync.RWMutex
	// cuts holds, by series ref, the chunks the current commit cut from the heads until its
	// batch, which stores them, is applied: queries read them from here meanwhile. Empty
	// between commits (a commit whose batch failed leaves them for good: the DB is broken).
	// Guarded by headMu, written under writeMu.
	cuts map[uint64][]storedChunk
	// guard decides whether writes are accepted (writeguard.go).
	guard writeGuard
	// scratch is the current commit's bookkeeping, guarded by writeMu.
	scratch commitScratch

	// The sample log, guarded by writeMu: the log, the time of its first record since the
	// last checkpoint, the series whose head chunk holds samples that only the log has, and
	// whether Pebble still holds log records of the version that kept them there.
	log      *sampleLog
	logStart time.Time
	// checkpointAt is the size of the log at which a commit checkpoints (checkpointLogBytes).
	checkpointAt int64
	logRec       logRecord      // the record being built by the current commit
	decimal      decimalScratch // buffers of encodeStoredChunkValue
	// encodeStored is encodeStoredChunkValue; tests set it to the encoder of an older version
	// to write the stores that version wrote.
	encodeStored func(b []byte, c *chunkBuilder, sc *decimalScratch) []byte
	unsynced     []*memSeries // heads with samples only the log has (memSeries.unsynced); also guarded by headMu for writing
	// ckpt is the checkpoint in parts that runs, if one does (checkpointRun); also guarded by
	// headMu for writing. ckptAsked is set while one is asked for of the checkpointer or runs.
	ckpt      *checkpointRun
	ckptAsked atomic.Bool
	ckptKick  chan struct{}
	ckptDone  chan struct{}
	// checkpointPartHook, when set (by tests), runs between the parts of a checkpoint.
	checkpointPartHook func()
	legacyLog          bool
	// legacyIndexUpTo is the newest partition holding `i` index keys, written by versions
	// before posting lists; noLegacyIndex when none does. Set by Open, then read only.
	legacyIndexUpTo int64

	series  seriesRegistry
	nextRef atomic.Uint64 // last series ref handed out
	maxT    atomic.Int64  // newest sample timestamp in the DB; math.MinInt64 when empty

	partsMu sync.RWMutex
	parts   []int64 // partitions that hold data, ascending

	metaMu sync.RWMutex
	meta   map[string]metadata.Metadata // by metric family name; mirrors the d family

	// Size retention (retention.go): the limit as last computed, in bytes, and whether the
	// newest partition alone kept the database above it (warned about once).
	retentionLimit atomic.Int64
	overSize       atomic.Bool

	stats      Stats
	sampleBufs sync.Pool // of *[]pendingSample

	// Merging closed chunks (merge.go): the windows waiting, guarded by writeMu; the signal to
	// the background loop; the window's length, which never changes.
	mergeQ     []mergeWindow
	mergeKick  chan struct{}
	mergeWinMs int64
	mergeMu    sync.Mutex // held by a merge pass

	// replayIt is, while replayLog runs (under writeMu), the one iterator its reads share (see
	// readIter); nil otherwise.
	replayIt *pebble.Iterator

	stop chan struct{}
	done chan struct{}
}

// Stats are cumulative counters for self-observability.
type Stats struct {
	SamplesAppended   atomic.Int64
	SamplesOutOfOrder atomic.Int64 // accepted out-of-order samples
	RejectedOutOfOrder,
	RejectedTooOld,
	RejectedDuplicate,
	RejectedInvalid atomic.Int64
	RejectedLimit           LimitRejections
	PartitionsDroppedBySize atomic.Int64 // also counted in PartitionsDropped
	SeriesCreated           atomic.Int64
	ExemplarsAppended       atomic.Int64
	PartitionsDropped       atomic.Int64
	RetentionRuns           atomic.Int64
	HeadSeriesCollected     atomic.Int64
	Checkpoints             atomic.Int64
	ChunksMerged            atomic.Int64 // closed chunks merged into their predecessors (merge.go)
}

// dataBlockSize is the target size of Pebble's data blocks (before compression); see Open.
const dataBlockSize = 32 << 10

// Open opens or creates the database in dir.
func Open(dir string, o Options) (*DB, error) {
	opts := o.withDefaults()
	db := &DB{
		encodeStored: encodeStoredChunkValue,
		dir:          dir,
		opts:         opts,
		checkpointAt: opts.CheckpointBytes,
		partMs:       opts.PartitionDuration.Milliseconds(),
		logger:       opts.Logger,
		meta:         map[string]metadata.Metadata{},
		writeMu:      newCtxMutex(),
		stop:         make(chan struct{}),
		mergeKick:    make(chan struct{}, 1),
		done:         make(chan struct{}),
		ckptKick:     make(chan struct{}, 1),
		ckptDone:     make(chan struct{}),
	}
	if db.partMs <= 0 {
		return nil, fmt.Errorf("partition duration %v is below 1ms", opts.PartitionDuration)
	}
	db.mergeWinMs = mergeWindowMsFor(db.partMs)
	db.series.init()
	db.maxT.Store(math.MinInt64)
	db.guard.init(db)

	db.cache = pebble.NewCache(opts.CacheSize)
	popts := &pebble.Options{
		Cache:        db.cache,
		MemTableSize: opts.MemTableSize,
		Logger:       pebbleLogger{opts.Logger.Sugar()},
		FS:           opts.FS,
	}
	el := db.guard.eventListener()
	popts.EventListener = &el
	// Data blocks of 32 KiB, not Pebble's 4 KiB: zstd finds the runs of neighbouring chunks of a
	// series and of neighbouring series (BenchmarkDiskAndQuery 0.26 -> 0.19 B/sample, 16 KiB 0.20,
	// 64 KiB 0.16; its queries unchanged). The write path's point reads mostly miss in bloom
	// filters or hit memory, so the larger block they would decompress is rarely paid.
	// Bloom filters make the point lookups of the write path cheap when they miss: a label set
	// never seen before, a series not yet indexed in a partition. Every level is compressed
	// with zstd, flushes included: Pebble moves a flushed table down unchanged when nothing
	// overlaps it, so tables written with a faster codec stayed that way in the bottom level
	// (BenchmarkDiskAndQuery 0.52 B/sample with the fastest codec above the two bottom levels,
	// 0.39 with zstd everywhere; Snappy, Pebble's default, 0.46). Now the levels above the
	// bottom use Snappy again and the bottom zstd, and the tables that stay measure the same:
	// BenchmarkDayStoreBytes 0.975 B/sample either way, and without the close's compaction
	// the bottom level holds the same 10.75 MB (level 0 1.07 MB against 1.00); disk after a
	// stop in the server benchmark unchanged. Flushing the heads that checkpoints write costs a
	// fifth as much (0.80 -> 0.15 CPU-s in 8 s of steady load at 100k series). (zstd's fastest
	// level, Pebble's "Balanced" profile, needs a newer table format than this store's and
	// falls back to Snappy here.)
	for i := range popts.Levels {
		popts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		popts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.SnappyCompression }
		if i == len(popts.Levels)-1 {
			popts.Levels[i].Compression = func() *sstable.CompressionProfile { return sstable.ZstdCompression }
		}
		popts.Levels[i].BlockSize = dataBlockSize
	}
	// Compaction of L0 waits for 16 files instead of 4: new series write their index keys all
	// over the keyspace, and each L0 compaction rewrites the level below where they land, so
	// merging more at once halves that rewriting (100k new series 1.9 -> 1.4 CPU-s, steady
	// appends 695 -> 599 ns/sample, selects unchanged; bloom filters keep point lookups cheap).
	popts.L0CompactionThreshold = 16
	popts.L0StopWritesThreshold = 64
	popts.EnsureDefaults()
	pdb, err := pebble.Open(dir, popts)
	if err != nil {
		db.cache.Unref()
		return nil, fmt.Errorf("open pebble at %q: %w", dir, err)
	}
	db.pdb = pdb
	db.guard.initReserve()
	var segments []string
	db.log, segments, err = openSampleLog(opts.FS, dir, opts.SyncCommits)
	if err == nil {
		err = db.load()
	}
	if err == nil {
		err = db.replayLog(segments)
	}
	if err != nil {
		if db.log != nil {
			_ = db.log.close()
		}
		_ = pdb.Close()
		db.cache.Unref()
		return nil, fmt.Errorf("load %q: %w", dir, err)
	}
	db.kickMerge() // windows the replay closed
	go db.background()
	go db.checkpointer()
	db.logger.Info("Opened time-series database",
		zap.String("directory", dir),
		zap.Int("partitions", len(db.parts)),
		zap.Uint64("last_series_ref", db.nextRef.Load()),
		zap.Int64("max_time", db.maxT.Load()))
	return db, nil
}

// load restores what the in-memory state needs from disk: the last series ref, the partition
// list, the newest timestamp and the metadata. Heads are not loaded here but on first append.
func (db *DB) load() error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{famLabelsByRef}, UpperBound: []byte{famLabelsByRef + 1}})
	if err != nil {
		return err
	}
	if it.Last() {
		if len(it.Key()) != 9 {
			_ = it.Close()
			return fmt.Errorf("%w: series key of %d bytes", errCorruptKey, len(it.Key()))
		}
		db.nextRef.Store(binaryRef(it.Key()[1:]))
	}
	if err := it.Close(); err != nil {
		return err
	}

	// The old index's newest partition, if any: readers look at its keys only up to there.
	db.legacyIndexUpTo = noLegacyIndex
	it, err = db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{famPostings}, UpperBound: []byte{famPostings + 1}})
	if err != nil {
		return err
	}
	if it.Last() {
		if len(it.Key()) < 9 {
			_ = it.Close()
			return fmt.Errorf("%w: index key of %d bytes", errCorruptKey, len(it.Key()))
		}
		db.legacyIndexUpTo = getInt64(it.Key()[1:9])
	}
	if err := it.Close(); err != nil {
		return err
	}

	// Label hashes of the stored series.
	it, err = db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{famSeriesHashes}, UpperBound: []byte{famSeriesHashes + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		if len(it.Key()) != 17 {
			_ = it.Close()
			return fmt.Errorf("%w: series hash key of %d bytes", errCorruptKey, len(it.Key()))
		}
		h := binaryRef(it.Key()[1:9])
		db.series.byHash[h%seriesStripes].stored.appendSorted(h) // the keys come in hash order
	}
	if err := it.Close(); err != nil {
		return err
	}

	// Partitions: one seek per partition in the p family.
	it, err = db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{famPartSeries}, UpperBound: []byte{famPartSeries + 1}})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		if len(it.Key()) < 9 {
			_ = it.Close()
			return errCorruptKey
		}
		p := getInt64(it.Key()[1:9])
		db.parts = append(db.parts, p)
		valid = it.SeekGE(partSeriesPrefix(nil, p+1))
	}
	if err := it.Close(); err != nil {
		return err
	}

	// The newest timestamp is the largest chunk maxt in the newest partition.
	if n := len(db.parts); n > 0 {
		maxT := int64(math.MinInt64)
		err := db.scanChunks(db.pdb, db.parts[n-1], func(_ uint64, c storedChunk) error {
			maxT = max(maxT, c.maxt)
			return nil
		})
		if err != nil {
			return err
		}
		db.maxT.Store(maxT)
	}
	return db.loadMetadata()
}

// scanChunks calls f for every chunk of a partition, in key order.
func (db *DB) scanChunks(r interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}, part int64, f func(ref uint64, c storedChunk) error) error {
	lower := chunkPartPrefix(nil, part)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(lower)})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		_, ref, mint, err := parseChunkKey(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		c, err := decodeChunkValue(mint, it.Value(), false)
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := f(ref, c); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// acquire registers an operation that uses Pebble; it fails once Close has begun.
func (db *DB) acquire() error {
	db.lifeMu.RLock()
	defer db.lifeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	db.inflight.Add(1)
	return nil
}

func (db *DB) release() { db.inflight.Done() }

// Close waits for in-flight operations (commits, open queriers) and closes Pebble, flushing
// memtables so that the next Open has nothing to replay.
func (db *DB) Close() error {
	db.lifeMu.Lock()
	if db.closed {
		db.lifeMu.Unlock()
		return nil
	}
	db.closed = true
	db.isClosed.Store(true)
	db.lifeMu.Unlock()
	close(db.stop)
	<-db.done
	<-db.ckptDone
	db.inflight.Wait()
	if ok, _ := db.Writable(); ok {
		db.mergeAtClose()
	}
	db.writeMu.Lock()
	// A DB that refuses writes does not write at close either: a checkpoint or a flush on a
	// full disk would fail, and Pebble's Flush waits until a flush succeeds. The sample log
	// (and Pebble's WAL) hold everything acknowledged; the next Open replays them.
	writable, why := db.Writable()
	var err error
	if writable {
		err = db.checkpointLocked(headsPacked)
		if err == nil {
			// The heads that gained nothing since a quick checkpoint: their stored copies are
			// what a restart reopens and what a series that stops leaves on disk.
			var quick []*memSeries
			db.series.byRef.each(func(s *memSeries) {
				if s.head.quickStored {
					quick = append(quick, s)
				}
			})
			err = db.packQuickHeadsLocked(slices.Values(quick))
		}
	}
	err = errors.Join(err, db.log.close())
	db.writeMu.Unlock()
	if writable {
		err = errors.Join(err, db.pdb.Flush())
		if err == nil {
			db.compactAtClose()
		}
	} else {
		db.logger.Warn("Closing without a checkpoint: the store refuses writes; the next start replays the sample log", zap.Error(why))
	}
	err = errors.Join(err, db.pdb.Close())
	if err == nil && writable {
		err = db.removePebbleLogs()
	}
	db.cache.Unref()
	db.logger.Info("Closed time-series database")
	return err
}

// closeCompactionBytes bounds the size of a store that compactAtClose compacts.
const closeCompactionBytes = 256 << 20

// compactAtClose merges what Pebble left in its upper levels into the bottom at a clean close,
// for a store of at most closeCompactionBytes. Level 0 holds the newest flushes: among them the
// copies of every open head that the last checkpoints wrote, each superseding the one before.
// Pebble merges level 0 only once 16 files gather (L0CompactionThreshold, raised for the CPU
// cost of new series), so a store stopped before that kept every superseded copy: 100k series
// of 100 samples took 21.4 MB after a stop, 17.4 MB compacted, for about 1 CPU-second. A larger
// store is left as it is, so that shutting down stays quick; Pebble merges its level 0 after
// the next start as usual. The compaction is an optimisation: everything is flushed and synced
// before it, and a failure is only logged. It runs only with room to spare on the disk (a
// compaction writes its output before it deletes its input).
func (db *DB) compactAtClose() {
	var size uint64
	for _, l := range db.pdb.Metrics().Levels {
		size += uint64(l.TablesSize)
	}
	if size == 0 || size > closeCompactionBytes {
		return
	}
	if du, err := db.opts.FS.GetDiskUsage(db.dir); err != nil || du.AvailBytes < size+db.Reserve() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := db.pdb.Compact(ctx, []byte{0}, []byte{0xff}, false); err != nil {
		db.logger.Warn("Compaction at close failed; the data is intact and is compacted after the next start", zap.Error(err))
		return
	}
	db.logger.Debug("Compacted at close", zap.Uint64("bytes_before", size), zap.Duration("took", time.Since(start)))
}

// removePebbleLogs removes Pebble's write-ahead log files after a clean close. Every memtable
// was flushed, so they hold nothing to replay; Pebble would keep them (up to
// MemTableStopWritesThreshold+1 of them, each up to a memtable in size) only to recycle them,
// which made a stopped store's directory several times the size of its data.
func (db *DB) removePebbleLogs() error {
	names, err := db.opts.FS.List(db.dir)
	if err != nil {
		return err
	}
	for _, name := range names {
		num, ok := strings.CutSuffix(name, ".log")
		if !ok || num == "" || strings.Trim(num, "0123456789") != "" {
			continue
		}
		err = errors.Join(err, db.opts.FS.Remove(db.opts.FS.PathJoin(db.dir, name)))
	}
	return err
}

// partition returns the partition that holds timestamp t.
func (db *DB) partition(t int64) int64 {
	p := t / db.partMs
	if t%db.partMs < 0 {
		p--
	}
	return p
}

// partitionsBetween returns the partitions with data that overlap [mint, maxt], ascending.
func (db *DB) partitionsBetween(mint, maxt int64) []int64 {
	lo, hi := db.partition(mint), db.partition(maxt)
	db.partsMu.RLock()
	defer db.partsMu.RUnlock()
	var out []int64
	for _, p := range db.parts {
		if p >= lo && p <= hi {
			out = append(out, p)
		}
	}
	return out
}

// addPartition records that p holds data. Caller holds writeMu.
func (db *DB) addPartition(p int64) {
	db.partsMu.Lock()
	defer db.partsMu.Unlock()
	i, found := slices.BinarySearch(db.parts, p)
	if !found {
		db.parts = slices.Insert(db.parts, i, p)
	}
}

// MaxTime is the newest sample timestamp stored, or math.MinInt64 when the DB is empty.
func (db *DB) MaxTime() int64 { return db.maxT.Load() }

// MinTime is the start of the oldest partition, or math.MaxInt64 when the DB is empty.
func (db *DB) MinTime() int64 {
	db.partsMu.RLock()
	defer db.partsMu.RUnlock()
	if len(db.parts) == 0 {
		return math.MaxInt64
	}
	return db.parts[0] * db.partMs
}

// Partitions is the number of partitions that hold data.
func (db *DB) Partitions() int {
	db.partsMu.RLock()
	defer db.partsMu.RUnlock()
	return len(db.parts)
}

// Stats returns the DB's counters.
func (db *DB) Stats() *Stats { return &db.stats }

// HeadSeries is the number of series held in memory.
func (db *DB) HeadSeries() int { return db.series.count() }

func (db *DB) background() {
	defer close(db.done)
	t := time.NewTicker(db.opts.RetentionInterval)
	defer t.Stop()
	cp := time.NewTicker(max(min(db.opts.CheckpointInterval/4, db.opts.LogSyncInterval), time.Millisecond))
	defer cp.Stop()
	probe := time.NewTicker(min(db.opts.ProbeInterval, time.Second))
	defer probe.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-probe.C:
			db.guard.poll()
			db.freeLogSpace()
		case <-cp.C:
			db.checkpointIfDue()
		case <-db.mergeKick:
			db.mergeQueued()
		case <-t.C:
			if ok, _ := db.Writable(); !ok {
				continue // retention and head collection write: not while refusing
			}
			if err := db.ApplyRetention(context.Background()); err != nil {
				db.logger.Warn("Retention failed", zap.Error(err))
			}
			db.collectHead()
		}
	}
}

type pebbleLogger struct{ s *zap.SugaredLogger }

func (l pebbleLogger) Infof(format string, args ...any)  { l.s.Debugf(format, args...) }
func (l pebbleLogger) Errorf(format string, args ...any) { l.s.Errorf(format, args...) }
func (l pebbleLogger) Fatalf(format string, args ...any) { l.s.Fatalf(format, args...) }
