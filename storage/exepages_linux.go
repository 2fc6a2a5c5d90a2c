package storage

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// releaseExecutablePages drops the process's droppable mappings of its executable (exepages.go)
// and returns how many resident bytes they held.
func releaseExecutablePages() (int64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("stat the executable: %w", err)
	}
	id := fileID{major: unix.Major(uint64(st.Dev)), minor: unix.Minor(uint64(st.Dev)), ino: st.Ino}
	if path, err := os.Executable(); err == nil {
		id.path = path
	}
	return releaseFileMappings(id)
}

// releaseFileMappings drops the process's droppable mappings of the file id names.
func releaseFileMappings(id fileID) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	maps, err := exeMappings(f, id)
	_ = f.Close()
	if err != nil {
		return 0, err
	}
	var released int64
	for _, m := range maps {
		// The range is the process's own mapping as smaps listed it; it is not turned into a Go
		// slice, so the raw system call.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %x-%x: %w", m.start, m.end, errno)
		}
		released += m.rssBytes
	}
	return released, nil
}
