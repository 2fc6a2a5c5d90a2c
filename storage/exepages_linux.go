package storage

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// releaseExecutablePages drops the process's droppable mappings of its executable and the
// executable's cached pages that no process maps (exepages.go), and returns how many resident
// bytes the mappings held.
func releaseExecutablePages() (int64, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("open the executable: %w", err)
	}
	defer exe.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(exe.Fd()), &st); err != nil {
		return 0, fmt.Errorf("stat the executable: %w", err)
	}
	id := fileID{major: unix.Major(uint64(st.Dev)), minor: unix.Minor(uint64(st.Dev)), ino: st.Ino}
	if path, err := os.Executable(); err == nil {
		id.path = path
	}
	return releaseFileMappings(id, exe)
}

// releaseFileMappings drops the process's droppable mappings of the file id names, marks them
// for reading without read-ahead, then drops f's (the same file's) cached pages that no process
// maps.
func releaseFileMappings(id fileID, f *os.File) (int64, error) {
	smaps, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	maps, err := exeMappings(smaps, id)
	_ = smaps.Close()
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		// The range is the process's own mapping as smaps listed it; it is not turned into a Go
		// slice, so the raw system calls. MADV_RANDOM: a page faulted in later is read alone, not
		// with its neighbours, so it comes back into the page cache as a page of its own.
		for _, advice := range []uintptr{unix.MADV_DONTNEED, unix.MADV_RANDOM} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), advice); errno != 0 {
				return released, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
			}
		}
		released += m.rssBytes
	}
	if len(maps) > 0 {
		// The kernel keeps pages that some process maps (another instance of this binary) and
		// pages not yet written back; only clean, unmapped ones are dropped.
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return released, fmt.Errorf("fadvise the executable: %w", err)
		}
	}
	return released, nil
}
