package storage

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Starting the collector runs code and reads tables of the executable that the process does not
// touch again: package initializers, decoding the configuration, building every component's
// factory and the pipelines. The kernel maps an executable's pages as they are touched, and the
// cached pages around each one too: fault-around, and where the page cache holds large folios
// (ext4 on kernel 6.18 here) the whole folio the page sits in, over 100 KB a touch. So when the
// pipelines are ready about 50 MB of this 78 MB binary are resident, and under load 26-29 MB
// are, far more than the code and tables the load uses: 20 MB of the function tables'
// (.gopclntab) 30 MB were mapped, some of their parts whole. All of it counts in the process's
// resident memory (what top, ps and the benchmark's VmHWM show) until the kernel reclaims it
// under memory pressure.
//
// releaseExecutablePages, a tenth of a second after the pipelines are ready
// (storageExtension.Ready), drops those mappings, marks them MADV_RANDOM and drops the
// executable's cached pages that no process maps (POSIX_FADV_DONTNEED). From then on a page the
// process touches is read from the file alone, into a page-sized folio, and mapped alone: under
// load (100k series, remote write) 13 MB of the binary are resident instead of 26-29 MB, and the
// page cache holds only those. The price: about a thousand page reads (4 MB) when the load
// starts, and the next start of the binary reads it from disk again (35 ms more to ready here).
//
// Only the executable's read-only private mappings without anonymous pages are dropped. For
// them, dropping a page is what the kernel's own reclaim does to it: the contents come back from
// the file unchanged (so matching a mapping to the executable is about intent, not safety). A
// mapping with anonymous pages (copied on write, as a position-independent binary's relocated
// read-only data) would lose what was written and is left alone, as are writable and locked
// mappings.

// exeMapping is an address range of the executable that may be dropped, and how much of it is
// resident.
type exeMapping struct {
	start, end uint64
	rssBytes   int64
}

// fileID names a mapped file: by its device and inode, or by its path. On overlayfs (a
// container's root) /proc/self/maps names the underlying file's device and inode, not the ones
// stat reports, so the path is the one that matches there.
type fileID struct {
	major, minor uint32
	ino          uint64
	path         string // "" for none
}

// exeMappings reads /proc/self/smaps (r) and returns the droppable mappings of the file id names
// (the executable).
func exeMappings(r io.Reader, id fileID) ([]exeMapping, error) {
	var (
		out  []exeMapping
		cur  exeMapping
		ok   bool // cur is a read-only private mapping of the executable
		anon int64
		rss  int64
	)
	flush := func(locked bool) {
		if ok && anon == 0 && !locked {
			cur.rssBytes = rss
			out = append(out, cur)
		}
		ok, anon, rss = false, 0, 0
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if isMappingHeader(f[0]) {
			// start-end perms offset major:minor inode [path]
			if len(f) < 5 {
				return nil, fmt.Errorf("smaps: short mapping line %q", line)
			}
			start, end, err := parseRange(f[0])
			if err != nil {
				return nil, err
			}
			cur = exeMapping{start: start, end: end}
			path := ""
			if len(f) > 5 {
				path = strings.Join(f[5:], " ")
			}
			ok = f[1] != "" && f[1][0] == 'r' && strings.HasSuffix(f[1], "p") && !strings.Contains(f[1], "w") &&
				(sameFile(f[3], f[4], id) || id.path != "" && path == id.path)
			continue
		}
		switch f[0] {
		case "Rss:":
			rss = parseKB(f)
		case "Anonymous:":
			anon = parseKB(f)
		case "VmFlags:":
			// The last field of a mapping's entry. "lo": locked in memory (mlock).
			flush(strings.Contains(" "+strings.Join(f[1:], " ")+" ", " lo "))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// isMappingHeader reports whether a smaps field starts a mapping ("7f00-7f10"), not a "Key:" line.
func isMappingHeader(field string) bool {
	i := strings.IndexByte(field, '-')
	return i > 0 && !strings.HasSuffix(field, ":")
}

func parseRange(s string) (start, end uint64, err error) {
	a, b, _ := strings.Cut(s, "-")
	if start, err = strconv.ParseUint(a, 16, 64); err == nil {
		end, err = strconv.ParseUint(b, 16, 64)
	}
	if err == nil && end <= start {
		err = fmt.Errorf("empty range")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("smaps: mapping range %q: %w", s, err)
	}
	return start, end, nil
}

// sameFile reports whether a mapping's device ("fd:01", hexadecimal major:minor) and inode are
// the executable's.
func sameFile(dev, inode string, id fileID) bool {
	ma, mi, found := strings.Cut(dev, ":")
	if !found {
		return false
	}
	gotMajor, err1 := strconv.ParseUint(ma, 16, 32)
	gotMinor, err2 := strconv.ParseUint(mi, 16, 32)
	gotIno, err3 := strconv.ParseUint(inode, 10, 64)
	return err1 == nil && err2 == nil && err3 == nil && gotIno != 0 &&
		uint32(gotMajor) == id.major && uint32(gotMinor) == id.minor && gotIno == id.ino
}

// parseKB parses "Key: N kB" into bytes; a malformed line counts as not zero, so that a mapping
// whose anonymous size cannot be read is kept.
func parseKB(f []string) int64 {
	if len(f) < 2 {
		return 1
	}
	v, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 1
	}
	return v << 10
}
