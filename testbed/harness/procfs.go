package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Readings of a process from /proc (Linux), for the benchmarks and the soak.

// ClockTicks returns the kernel's clock ticks per second (getconf CLK_TCK), 100 when getconf
// is missing or answers nonsense.
func ClockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || n <= 0 {
		return 100
	}
	return n
}

// CPUTicks returns utime+stime of process pid, in clock ticks, from /proc/<pid>/stat (fields
// 14 and 15; the command name, field 2, may contain spaces and parentheses, so fields are counted
// after its last ')').
func CPUTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, s)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state), so field n is fields[n-3].
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(fields))
	}
	utime, err := strconv.ParseInt(fields[11], 10, 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseInt(fields[12], 10, 64)
	if err != nil {
		return 0, err
	}
	return utime + stime, nil
}

// StatusKB returns a field of /proc/<pid>/status given in kB (VmHWM, VmRSS), in bytes.
func StatusKB(pid int, field string) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: unexpected %q", pid, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb * 1024, err
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// Settle waits until process pid is idle: until it used at most one clock tick of CPU over
// `every`, or max has passed. It returns how long it waited.
func Settle(pid int, every, max time.Duration) (time.Duration, error) {
	start := time.Now()
	prev, err := CPUTicks(pid)
	if err != nil {
		return 0, err
	}
	for time.Since(start) < max {
		time.Sleep(every)
		cur, err := CPUTicks(pid)
		if err != nil {
			return time.Since(start), err
		}
		if cur-prev <= 1 {
			break
		}
		prev = cur
	}
	return time.Since(start), nil
}

// OpenFiles returns the number of open file descriptors of process pid (the entries of
// /proc/<pid>/fd).
func OpenFiles(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(entries), err
}
