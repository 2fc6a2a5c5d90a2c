package storage

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// smapsEntry writes one mapping's entry as /proc/self/smaps shows it (the fields that matter).
func smapsEntry(header string, rssKB, anonKB int, flags string) string {
	return header + "\n" +
		"Size:               1024 kB\n" +
		"Rss:                " + strconv.Itoa(rssKB) + " kB\n" +
		"Pss:                " + strconv.Itoa(rssKB) + " kB\n" +
		"Anonymous:          " + strconv.Itoa(anonKB) + " kB\n" +
		"Locked:                0 kB\n" +
		"VmFlags: " + flags + "\n"
}

// Only the executable's read-only private mappings without anonymous pages and not locked are
// dropped; the device and inode name the file, not the path.
func TestExeMappings(t *testing.T) {
	const exe = " 103:1a0 4242 /usr/bin/otelcol-metricstor"
	smaps := smapsEntry("00400000-024bd000 r-xp 00000000"+exe, 26196, 0, "rd ex mr mw me") +
		smapsEntry("024bd000-04cd5000 r--p 020bd000"+exe, 31644, 0, "rd mr mw me") +
		// RELRO of a position-independent binary: relocated (copied on write), then made read-only.
		smapsEntry("04cd5000-04cdd000 r--p 048d5000"+exe, 32, 32, "rd mr mw me ac") +
		smapsEntry("04cdd000-04e7e000 rw-p 048dd000"+exe, 800, 200, "rd wr mr mw me ac") +
		smapsEntry("05000000-05001000 r-xp 00000000"+exe, 4, 0, "rd ex mr mw me lo") + // mlocked
		smapsEntry("06000000-06001000 r-xp 00000000"+exe, 4, 0, "rd ex mr me") + // another private text mapping
		smapsEntry("07000000-07010000 r-xs 00000000"+exe, 64, 0, "rd ex sh mr mw me ms") + // shared mapping
		smapsEntry("08000000-08010000 r-xp 00000000 103:1a0 4243 /usr/lib/other.so", 64, 0, "rd ex mr mw me") +
		smapsEntry("09000000-09010000 r-xp 00000000 103:1a1 4242 /mnt/other-device", 64, 0, "rd ex mr mw me") +
		smapsEntry("7f0000000000-7f0000100000 rw-p 00000000 00:00 0", 1024, 1024, "rd wr mr mw me ac") +
		smapsEntry("7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]", 132, 132, "rd wr mr mw me gd ac")
	got, err := exeMappings(strings.NewReader(smaps), fileID{major: 0x103, minor: 0x1a0, ino: 4242})
	require.NoError(t, err)
	assert.Equal(t, []exeMapping{
		{start: 0x400000, end: 0x24bd000, rssBytes: 26196 << 10},
		{start: 0x24bd000, end: 0x4cd5000, rssBytes: 31644 << 10},
		{start: 0x6000000, end: 0x6001000, rssBytes: 4 << 10},
	}, got)

	// A mapping whose anonymous size cannot be read is kept.
	broken := strings.Replace(smapsEntry("00400000-024bd000 r-xp 00000000"+exe, 10, 0, "rd ex"), "Anonymous:          0 kB", "Anonymous: ? kB", 1)
	got, err = exeMappings(strings.NewReader(broken), fileID{major: 0x103, minor: 0x1a0, ino: 4242})
	require.NoError(t, err)
	assert.Empty(t, got)

	// On overlayfs maps names the underlying file's device and inode: the path matches instead,
	// spaces and all; another path does not.
	overlay := smapsEntry("00400000-024bd000 r-xp 00000000 00:2f 777 /opt/my collector/otelcol-metricstor", 100, 0, "rd ex mr mw me") +
		smapsEntry("05000000-05010000 r-xp 00000000 00:2f 778 /opt/my collector/other", 64, 0, "rd ex mr mw me")
	got, err = exeMappings(strings.NewReader(overlay), fileID{major: 0x103, minor: 0x1a0, ino: 4242, path: "/opt/my collector/otelcol-metricstor"})
	require.NoError(t, err)
	assert.Equal(t, []exeMapping{{start: 0x400000, end: 0x24bd000, rssBytes: 100 << 10}}, got)
	got, err = exeMappings(strings.NewReader(overlay), fileID{major: 0x103, minor: 0x1a0, ino: 4242})
	require.NoError(t, err)
	assert.Empty(t, got, "no path given: device and inode only")

	_, err = exeMappings(strings.NewReader("00400000-00300000 r-xp 00000000"+exe+"\n"), fileID{major: 0x103, minor: 0x1a0, ino: 4242})
	assert.ErrorContains(t, err, "mapping range")
}
