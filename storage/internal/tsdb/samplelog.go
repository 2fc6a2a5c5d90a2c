package tsdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// sampleLog is the write-ahead log of float samples and of the series they name, kept in
// segment files beside Pebble's own files (in the logDir subdirectory of the database).
//
// Why outside Pebble: a log kept in Pebble's keyspace paid for every sample three times (Pebble's
// WAL, its memtable, the compaction of the deleted records) and forced a WAL fsync per commit.
// Here a commit is one write(2) of one record, so an acknowledged commit survives a crash of the
// process (the kernel has its bytes) without an fsync; Options.SyncCommits adds an fsync per
// commit for those who need power-loss durability.
//
// Records: a 4-byte little-endian payload length, the payload's 4-byte CRC-32C, the payload. A
// payload is a sequence of entries, each a kind byte then its body:
//   - entrySeries: ref (uvarint), labels (encodeLabels), for a series whose keys may not be
//     durable in Pebble yet; it always precedes the samples that name the ref;
//   - entrySamples: a count (uvarint) then that many samples in appendLogSample's encoding.
//
// The log is cut into a new segment at each checkpoint and the older segments are removed once
// the checkpoint's synced Pebble batch has made every chunk and series key durable.
type sampleLog struct {
	fs   vfs.FS
	dir  string
	sync bool // fsync after each record

	f       vfs.File // the open segment; nil until the first record after a reset
	name    string   // path of f
	off     int64    // bytes of whole records in f
	nextSeg uint64   // number of the next segment to create
	bytes   int64    // record bytes written since the last reset

	dirty    bool      // f holds records not yet fsynced (never with sync)
	syncedAt time.Time // the last syncNow
}

const (
	logDir       = "samplelog"
	logSegSuffix = ".seg"
	logHeaderLen = 8

	entrySeries  byte = 1
	entrySamples byte = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errTornRecord marks a record cut short or failing its checksum.
var errTornRecord = errors.New("torn or corrupt sample log record")

func segmentName(n uint64) string { return fmt.Sprintf("%020d%s", n, logSegSuffix) }

// openSampleLog opens the log directory, creating it, and returns the segments already there in
// order; the caller replays them and then calls reset.
func openSampleLog(fs vfs.FS, dbDir string, sync bool) (*sampleLog, []string, error) {
	dir := fs.PathJoin(dbDir, logDir)
	if _, err := fs.Stat(dir); err != nil {
		if err := fs.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		// The directory's own name must survive a power loss as well.
		if err := syncDir(fs, dbDir); err != nil {
			return nil, nil, err
		}
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, nil, err
	}
	l := &sampleLog{fs: fs, dir: dir, sync: sync}
	var segs []string
	for _, name := range names {
		num, ok := strings.CutSuffix(name, logSegSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, name)
		l.nextSeg = max(l.nextSeg, n+1)
	}
	slices.Sort(segs) // zero-padded numbers sort as numbers
	for i := range segs {
		segs[i] = fs.PathJoin(dir, segs[i])
	}
	return l, segs, nil
}

// frame turns payload (which starts logHeaderLen bytes into rec) into a record in place.
func frame(rec []byte) []byte {
	payload := rec[logHeaderLen:]
	binary.LittleEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:8], crc32.Checksum(payload, crcTable))
	return rec
}

// write appends one framed record (see frame) with one write call. Caller holds DB.writeMu, so
// records are in commit order, which replay relies on.
//
// When the write (or its sync) fails, the record must never be replayed: its commit is refused.
// A short write leaves a torn record, which replay treats as the end of the segment; a record
// written whole whose sync failed gets its checksum overwritten. Either way the segment is
// closed, so that the next record starts a new segment, after the failed one.
func (l *sampleLog) write(rec []byte) error {
	if l.f == nil {
		if err := l.createSegment(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(rec)
	if err != nil {
		err = fmt.Errorf("write sample log: %w", err)
	} else if l.sync {
		if serr := l.f.Sync(); serr != nil {
			err = fmt.Errorf("sync sample log: %w", serr)
		}
	}
	if err != nil {
		l.abandon(rec, n)
		return err
	}
	l.off += int64(len(rec))
	l.bytes += int64(len(rec))
	l.dirty = !l.sync
	return nil
}

// syncNow fsyncs the open segment if it holds records written since its last sync. Earlier
// segments were synced when they were abandoned (see abandon), or are made redundant by the
// checkpoint that closed them. Caller holds DB.writeMu.
func (l *sampleLog) syncNow() error {
	l.syncedAt = time.Now()
	if l.f == nil || !l.dirty {
		return nil
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync sample log: %w", err)
	}
	l.dirty = false
	return nil
}

// abandon ends the open segment after a record failed: n of its bytes reached the file. The
// record is made unreadable, so that a later replay stops the segment before it; a segment
// that holds no whole record is removed.
func (l *sampleLog) abandon(rec []byte, n int) {
	f, name := l.f, l.name
	l.f, l.name = nil, ""
	if n >= logHeaderLen {
		// The header is out, maybe the whole record: flip its checksum (and try to sync
		// that). Overwriting bytes already allocated needs no space. If it fails too (the disk
		// went read-only), a short record is still torn; only a whole one whose sync failed
		// could come back.
		hdr := slices.Clone(rec[:logHeaderLen])
		binary.LittleEndian.PutUint32(hdr[4:8], ^binary.LittleEndian.Uint32(hdr[4:8]))
		_, _ = f.WriteAt(hdr, l.off)
	}
	// The whole records before the failed one are acknowledged: sync them now (best effort; the
	// disk may be what failed), not at the next checkpoint, which may be an hour away.
	_ = f.Sync()
	l.dirty = false
	_ = f.Close()
	if l.off == 0 {
		// No whole record: remove the segment, best effort (one left behind replays as
		// nothing, and the next checkpoint removes it).
		if l.fs.Remove(name) == nil {
			_ = l.syncDir()
		}
	}
}

// createSegment starts a new segment and syncs the directory, so the file's name survives a
// power loss as well as its synced contents.
func (l *sampleLog) createSegment() error {
	name := l.fs.PathJoin(l.dir, segmentName(l.nextSeg))
	f, err := l.fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fmt.Errorf("create sample log segment: %w", err)
	}
	l.nextSeg++
	if err := l.syncDir(); err != nil {
		_ = f.Close()
		_ = l.fs.Remove(name)
		return fmt.Errorf("sync sample log directory: %w", err)
	}
	l.f, l.name, l.off = f, name, 0
	return nil
}

func (l *sampleLog) syncDir() error { return syncDir(l.fs, l.dir) }

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// rotate closes the open segment, so that the next record starts a new one, and returns the
// segments written so far, for remove once what they hold is durable elsewhere. Caller holds
// DB.writeMu.
func (l *sampleLog) rotate() ([]string, error) {
	var err error
	if l.f != nil {
		err = l.f.Close()
		l.f, l.name = nil, ""
	}
	l.bytes, l.dirty = 0, false // the checkpoint that rotates makes the closed segments redundant
	names, lerr := l.fs.List(l.dir)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	var old []string
	for _, name := range names {
		if strings.HasSuffix(name, logSegSuffix) {
			old = append(old, l.fs.PathJoin(l.dir, name))
		}
	}
	return old, err
}

// remove deletes segments returned by rotate. Not synced: a removed segment that comes back after
// a power loss is replayed again, and replay is idempotent (samples at or before a series' stored
// end are skipped). Two overlapping checkpoints may both remove a segment.
func (l *sampleLog) remove(segs []string) error {
	var err error
	for _, name := range segs {
		if rerr := l.fs.Remove(name); rerr != nil && !oserror.IsNotExist(rerr) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

func (l *sampleLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f, l.name = nil, ""
	return err
}

// readSegment calls f with each record's payload in order. A record cut short or failing its
// checksum ends the segment: it returns errTornRecord with the number of records read.
func readSegment(fs vfs.FS, name string, f func(payload []byte) error) (int, error) {
	file, err := fs.Open(name)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return 0, err
	}
	// Record by record through one reused buffer, not the whole segment in memory: a segment of
	// 64 MiB read whole (and grown to twice that while read) pushed a restart after a crash at
	// 100k series past the memory budget, where the garbage collector ran all the time. f must
	// not keep the payload.
	left := st.Size()
	r := bufio.NewReaderSize(file, 1<<20)
	var hdr [logHeaderLen]byte
	var payload []byte
	n := 0
	for left > 0 {
		if left < logHeaderLen {
			return n, errTornRecord
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return n, tornIfShort(err)
		}
		size := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size > left-logHeaderLen {
			return n, errTornRecord // also what a corrupt length looks like: never allocated
		}
		payload = slices.Grow(payload[:0], int(size))[:size]
		if _, err := io.ReadFull(r, payload); err != nil {
			return n, tornIfShort(err)
		}
		if crc32.Checksum(payload, crcTable) != sum {
			return n, errTornRecord
		}
		if err := f(payload); err != nil {
			return n, err
		}
		n++
		left -= logHeaderLen + size
	}
	return n, nil
}

// tornIfShort maps a read that ended early (the file is shorter than its size said) to a torn
// record.
func tornIfShort(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTornRecord
	}
	return err
}
