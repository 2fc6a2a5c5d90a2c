package storage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// residentPages counts the pages of b mapped in the process (the present bit of
// /proc/self/pagemap), without touching them.
func residentPages(t *testing.T, b []byte) int {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	require.NoError(t, err)
	defer f.Close()
	page := os.Getpagesize()
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b))) / uintptr(page)
	entries := make([]byte, 8*(len(b)/page))
	_, err = f.ReadAt(entries, int64(start)*8)
	require.NoError(t, err)
	n := 0
	for i := 0; i < len(entries); i += 8 {
		if entries[i+7]&0x80 != 0 { // bit 63, little-endian
			n++
		}
	}
	return n
}

// A read-only private mapping of a file is dropped and comes back from the file unchanged, a page
// at a time; one with a page copied on write (as a relocated read-only segment) is left alone, its
// page intact.
func TestReleaseFileMappings(t *testing.T) {
	page := os.Getpagesize()
	const pages = 256
	want := bytes.Repeat([]byte("metricstor pages "), pages*page/17+1)[:pages*page]
	name := filepath.Join(t.TempDir(), "mapped")
	require.NoError(t, os.WriteFile(name, want, 0o600))
	f, err := os.Open(name)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Sync()) // dirty pages would stay cached
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(int(f.Fd()), &st))

	text, err := unix.Mmap(int(f.Fd()), 0, len(want), unix.PROT_READ, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(text)
	relro, err := unix.Mmap(int(f.Fd()), 0, 4*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	require.NoError(t, err)
	defer unix.Munmap(relro)
	relro[0] = 'M' // a private copy of the first page, then read-only as RELRO is
	require.NoError(t, unix.Mprotect(relro, unix.PROT_READ))

	require.Equal(t, want, text) // touches every page
	require.Equal(t, pages, residentPages(t, text))
	require.Equal(t, byte('M'), relro[0])

	released, err := releaseFileMappings(fileID{major: unix.Major(uint64(st.Dev)), minor: unix.Minor(uint64(st.Dev)), ino: st.Ino}, f)
	require.NoError(t, err)
	assert.Equal(t, int64(pages*page), released)
	assert.Equal(t, 0, residentPages(t, text), "the read-only mapping is dropped")
	// Before the release every page was cached, so touching one would map its cached neighbours
	// as well (fault-around, large folios). After it the page is read and mapped alone.
	if !onTmpfs(t, name) { // tmpfs pages cannot be dropped from the cache
		assert.Equal(t, want[100*page:101*page], text[100*page:101*page])
		assert.Equal(t, 1, residentPages(t, text), "a page touched after the release comes back alone")
	}
	assert.Equal(t, want, text, "and reads back from the file")
	assert.Equal(t, byte('M'), relro[0], "the mapping with an anonymous page is kept")
	assert.Equal(t, want[1:4*page], relro[1:])
}

func onTmpfs(t *testing.T, name string) bool {
	var fs unix.Statfs_t
	require.NoError(t, unix.Statfs(name, &fs))
	return fs.Type == unix.TMPFS_MAGIC
}

// The extension drops the executable's pages once, after the first Ready; a Shutdown before
// then cancels the release.
func TestReadyReleasesExecutablePages(t *testing.T) {
	const msg = "Released the executable's pages that only startup used; pages touched again are read one at a time"
	t.Run("released", func(t *testing.T) {
		ext, logs := startWithLimit(t, 0) // no budget: the runtime's limit is left alone
		ext.(*storageExtension).releaseAfter = 10 * time.Millisecond
		watcher := ext.(*storageExtension)
		require.NoError(t, watcher.Ready())
		require.NoError(t, watcher.Ready())
		require.NoError(t, watcher.NotReady())
		require.Eventually(t, func() bool { return logs.FilterMessage(msg).Len() > 0 }, 10*time.Second, 5*time.Millisecond)
		require.NoError(t, ext.Shutdown(context.Background()))
		entries := logs.FilterMessage(msg).All()
		require.Len(t, entries, 1)
		assert.Greater(t, entries[0].ContextMap()["released_bytes"].(int64), int64(0))
	})
	t.Run("shutdown first", func(t *testing.T) {
		ext, logs := startWithLimit(t, 0)
		ext.(*storageExtension).releaseAfter = time.Hour // Shutdown comes first
		require.NoError(t, ext.(*storageExtension).Ready())
		require.NoError(t, ext.Shutdown(context.Background()))
		assert.Zero(t, logs.FilterMessage(msg).Len())
	})
}
