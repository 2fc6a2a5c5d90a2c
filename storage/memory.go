package storage

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

const (
	// defaultMemoryLimitMiB is memory_limit_mib's default: 100,000 active node-exporter-like
	// series fit in it with GC headroom to spare (BENCHMARKS.md, "Memory budget"; 192 since the
	// series diet of 2026-12-03: against 224, 30 MB less peak RSS at 100k series, the
	// collector's share of the CPU 4.4-4.9 -> 5.1-5.4 %, total CPU within the noise of six
	// alternated pairs; 176 since the receiver stopped copying request bodies for their label
	// strings, a third less garbage: 15 MB less peak RSS, CPU per sample the same in three
	// alternated pairs; 144 since the executable's pages are read back a page at a time: the
	// benchmark's peak RSS at 100k series 157-159 MB, the 160 MB goal, for about 60 % more
	// collections than at 176; CPU per sample within the noise of alternated runs, BENCHMARKS.md;
	// 140 since checkpoints write the heads beside the commits, which took 1-2 MB more: 146-148
	// against 151-152 MiB of peak at 100k series, CPU per sample within the noise of three
	// alternated pairs).
	defaultMemoryLimitMiB = 140
	// minMemoryLimitMiB is the smallest budget accepted: below it the runtime, the collector
	// around the store and Pebble's smallest memtables leave nothing for the series.
	minMemoryLimitMiB = 64

	// Without a budget the store keeps the sizes it always had.
	unboundedMemTableSize = 8 << 20
	unboundedCacheSize    = 32 << 20
)

// memorySizes is what the store takes from the memory budget.
type memorySizes struct {
	// limit is the runtime's soft memory limit memory_limit_mib asks for, in bytes; 0 for none.
	limit int64
	// memTable is the size of one Pebble memtable. Pebble holds up to two (the one being
	// written and the one being flushed), allocated whole: with CGO_ENABLED=0 they are Go heap.
	memTable uint64
	// cache is Pebble's block cache; it fills up with what queries and the write path read.
	cache int64
}

// sizeMemory divides the budget (bytes; 0 for none): a thirty-second of it per memtable (two of them, between 2 and
// 64 MiB each) and an eighth for the block cache unless cache_size_mib says otherwise. The rest,
// about 80 %, is for what grows with the series (heads, the series registry, the exporter's
// cache of series references), request buffers and the garbage collector's headroom. At the
// default 140 MiB: 4.375 MiB memtables and a 17.5 MiB cache.
func sizeMemory(budget int64, cacheMiB int) memorySizes {
	if budget <= 0 {
		s := memorySizes{memTable: unboundedMemTableSize, cache: unboundedCacheSize}
		if cacheMiB > 0 {
			s.cache = int64(cacheMiB) << 20
		}
		return s
	}
	s := memorySizes{
		limit:    budget,
		memTable: uint64(min(max(budget/32, 2<<20), 64<<20)),
		cache:    budget / 8,
	}
	if cacheMiB > 0 {
		s.cache = int64(cacheMiB) << 20
	}
	return s
}

// memoryLimit is the runtime's soft memory limit as the extension set it, so that Shutdown can
// put back the one it found.
type memoryLimit struct {
	set      bool
	previous int64
}

// applyMemoryLimit sets the Go runtime's soft memory limit to want (bytes) unless the user set
// GOMEMLIMIT in the environment, which the runtime has already applied and which is kept, and
// logs what the process runs with. want 0 leaves the runtime as it is.
func applyMemoryLimit(want int64, sizes memorySizes, logger *zap.Logger) memoryLimit {
	var ml memoryLimit
	source := "memory_limit_mib"
	switch env, inEnv := os.LookupEnv("GOMEMLIMIT"); {
	case inEnv && env != "":
		source = "GOMEMLIMIT"
	case want <= 0:
		source = "none"
	default:
		ml.previous, ml.set = debug.SetMemoryLimit(want), true
	}
	fields := []zap.Field{
		zap.String("source", source),
		zap.Int64("memtable_bytes", int64(sizes.memTable)),
		zap.Int64("block_cache_bytes", sizes.cache),
	}
	if cur := currentMemoryLimit(); cur > 0 {
		fields = append(fields, zap.Int64("go_memory_limit_bytes", cur))
	}
	logger.Info("Memory budget", fields...)
	return ml
}

// restore puts back the runtime's limit found by applyMemoryLimit.
func (ml memoryLimit) restore() {
	if ml.set {
		debug.SetMemoryLimit(ml.previous)
	}
}

// currentMemoryLimit is the runtime's soft memory limit in bytes, 0 when there is none.
func currentMemoryLimit() int64 {
	if v := debug.SetMemoryLimit(-1); v != math.MaxInt64 {
		return v
	}
	return 0
}

// cgroupRatio is the share of its cgroup's memory limit the budget may take, as Prometheus's
// --auto-gomemlimit.ratio: the rest is for what the runtime does not count (the binary's pages,
// about 30 MB of this one resident under load, exepages.go) and for the kernel's accounting.
const cgroupRatio = 0.9

// fitBudget returns memory_limit_mib in bytes, lowered to cgroupRatio of the cgroup's memory
// limit (bytes, 0 for none) when it does not fit in it: a budget the container cannot give only
// gets the process killed.
func fitBudget(limitMiB int, cgroupLimit int64) (budget int64, lowered bool) {
	budget = int64(limitMiB) << 20
	if budget <= 0 || cgroupLimit <= 0 {
		return budget, false
	}
	if fit := int64(float64(cgroupLimit) * cgroupRatio); budget > fit {
		return max(fit, minMemoryLimitMiB<<20), true
	}
	return budget, false
}

// cgroupMemoryLimit returns the memory limit of the cgroup the process runs in, in bytes, or 0
// when there is none or it cannot be read. It reads cgroup v2's memory.max and v1's
// memory.limit_in_bytes at the root of the cgroup filesystem (what a container sees of its own
// cgroup) and in the process's cgroup as /proc/self/cgroup names it, and takes the smallest.
// root is /sys/fs/cgroup and procCgroup /proc/self/cgroup outside tests.
func cgroupMemoryLimit(root, procCgroup string) int64 {
	files := []string{filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes")}
	if f, err := os.Open(procCgroup); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			// hierarchy-ID:controllers:path; v2 is "0::path", v1's memory controller "N:memory:path".
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 || parts[2] == "/" {
				continue
			}
			switch {
			case parts[0] == "0" && parts[1] == "":
				files = append(files, filepath.Join(root, parts[2], "memory.max"))
			case strings.Contains(","+parts[1]+",", ",memory,"):
				files = append(files, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"))
			}
		}
		_ = f.Close()
	}
	var limit int64
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		// "max" (v2) or a value near 2^63 (v1) is no limit.
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 {
			continue
		}
		if limit == 0 || v < limit {
			limit = v
		}
	}
	return limit
}

// headroomWarnRatio is the share of the runtime's limit past which the live heap leaves the
// garbage collector too little room: with GOGC=100 it would let the heap grow to twice the live
// size, and the limit cuts that headroom to a quarter, so it runs four times as often or more.
const headroomWarnRatio = 0.75

// headroomWatch warns, once each time it happens, when the live heap (what the last garbage
// collection kept) passes headroomWarnRatio of the runtime's soft limit: the budget no longer
// fits the active series, and the collector spends more and more CPU on garbage collection (up
// to half of it) while the process grows past the budget. Nothing else tells the user that the
// budget is too small.
type headroomWatch struct {
	logger *zap.Logger
	// read returns the live heap and the runtime's limit (0 for none), in bytes.
	read   func() (live, limit int64)
	series func() int // active series, for the message
	warned bool
}

// check runs one comparison, and reports whether it logged.
func (w *headroomWatch) check() bool {
	live, limit := w.read()
	over := limit > 0 && float64(live) > headroomWarnRatio*float64(limit)
	switch {
	case over && !w.warned:
		w.warned = true
		w.logger.Warn("The live heap is close to the memory limit: garbage collection runs often and costs CPU; raise memory_limit_mib (about 0.7 MiB per 1,000 active series plus 100 MiB)",
			zap.Int64("live_heap_bytes", live), zap.Int64("memory_limit_bytes", limit), zap.Int("head_series", w.series()))
		return true
	case !over && w.warned && float64(live) < 0.9*headroomWarnRatio*float64(limit):
		w.warned = false // warn again if it comes back; the margin keeps a heap at the line quiet
	}
	return false
}

// run checks every interval until stop is closed.
func (w *headroomWatch) run(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.check()
		}
	}
}

// readHeap returns the live heap as of the last garbage collection and the runtime's soft limit.
func readHeap() (live, limit int64) {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = int64(s[0].Value.Uint64())
	}
	return live, currentMemoryLimit()
}
