package storage

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	compmetadata "github.com/metricstor/metricstor/storage/internal/metadata"
)

func TestSizeMemory(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		name            string
		limitMiB, cache int
		want            memorySizes
	}{
		{name: "no budget", want: memorySizes{memTable: 8 * mib, cache: 32 * mib}},
		{name: "no budget, cache set", cache: 100, want: memorySizes{memTable: 8 * mib, cache: 100 * mib}},
		{name: "default", limitMiB: defaultMemoryLimitMiB, want: memorySizes{limit: 140 * mib, memTable: 35 * mib / 8, cache: 35 * mib / 2}},
		{name: "small", limitMiB: 160, want: memorySizes{limit: 160 * mib, memTable: 5 * mib, cache: 20 * mib}},
		{name: "smallest", limitMiB: 64, want: memorySizes{limit: 64 * mib, memTable: 2 * mib, cache: 8 * mib}},
		{name: "large: memtables capped", limitMiB: 4096, want: memorySizes{limit: 4096 * mib, memTable: 64 * mib, cache: 512 * mib}},
		{name: "cache set", limitMiB: 1024, cache: 64, want: memorySizes{limit: 1024 * mib, memTable: 32 * mib, cache: 64 * mib}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sizeMemory(int64(tt.limitMiB)<<20, tt.cache))
		})
	}
}

func TestFitBudget(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		name        string
		limitMiB    int
		cgroup      int64
		want        int64
		wantLowered bool
	}{
		{name: "no cgroup limit", limitMiB: 256, want: 256 * mib},
		{name: "fits", limitMiB: 256, cgroup: 1024 * mib, want: 256 * mib},
		{name: "at 90 percent", limitMiB: 900, cgroup: 1000 * mib, want: 900 * mib},
		{name: "lowered to 90 percent", limitMiB: 1024, cgroup: 1000 * mib, want: 900 * mib, wantLowered: true},
		{name: "never below the minimum", limitMiB: 256, cgroup: 50 * mib, want: 64 * mib, wantLowered: true},
		{name: "no budget", limitMiB: 0, cgroup: 100 * mib, want: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, lowered := fitBudget(tt.limitMiB, tt.cgroup)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.wantLowered, lowered)
		})
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	write := func(t *testing.T, path, content string) {
		t.Helper()
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	t.Run("v2 container", func(t *testing.T) {
		root := t.TempDir()
		write(t, filepath.Join(root, "memory.max"), "536870912\n")
		proc := filepath.Join(t.TempDir(), "cgroup")
		write(t, proc, "0::/\n")
		assert.Equal(t, int64(512<<20), cgroupMemoryLimit(root, proc))
	})
	t.Run("v2 unlimited", func(t *testing.T) {
		root := t.TempDir()
		write(t, filepath.Join(root, "memory.max"), "max\n")
		assert.Equal(t, int64(0), cgroupMemoryLimit(root, filepath.Join(root, "missing")))
	})
	t.Run("v2 by path, the smallest", func(t *testing.T) {
		root := t.TempDir()
		write(t, filepath.Join(root, "system.slice/app.service/memory.max"), "268435456\n")
		write(t, filepath.Join(root, "memory.max"), "1073741824\n")
		proc := filepath.Join(t.TempDir(), "cgroup")
		write(t, proc, "0::/system.slice/app.service\n")
		assert.Equal(t, int64(256<<20), cgroupMemoryLimit(root, proc))
	})
	t.Run("v1 by path", func(t *testing.T) {
		root := t.TempDir()
		write(t, filepath.Join(root, "memory/memory.limit_in_bytes"), "9223372036854771712\n") // no limit
		write(t, filepath.Join(root, "memory/docker/abc/memory.limit_in_bytes"), "2147483648\n")
		proc := filepath.Join(t.TempDir(), "cgroup")
		write(t, proc, "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n")
		assert.Equal(t, int64(2<<30), cgroupMemoryLimit(root, proc))
	})
	t.Run("none", func(t *testing.T) {
		assert.Equal(t, int64(0), cgroupMemoryLimit(t.TempDir(), filepath.Join(t.TempDir(), "missing")))
	})
}

// startWithLimit starts an extension with memory_limit_mib set, observing its logs.
func startWithLimit(t *testing.T, limitMiB int) (extension.Extension, *observer.ObservedLogs) {
	t.Helper()
	cfg := createDefaultConfig()
	cfg.Directory = t.TempDir()
	cfg.MemoryLimitMiB = limitMiB
	core, logs := observer.New(zap.InfoLevel)
	set := extension.Settings{ID: component.NewID(compmetadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()}
	set.Logger = zap.New(core)
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(context.Background(), componenttest.NewNopHost()))
	return ext, logs
}

// The runtime's soft limit is memory_limit_mib while the extension runs and what it was
// before once it stops; the choice is logged.
func TestMemoryLimitSetsRuntimeLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "") // set but empty counts as unset, as for the runtime
	before := debug.SetMemoryLimit(-1)
	// 300 MiB, unless the machine's cgroup allows less.
	want, _ := fitBudget(300, cgroupMemoryLimit("/sys/fs/cgroup", "/proc/self/cgroup"))
	ext, logs := startWithLimit(t, 300)
	assert.Equal(t, want, debug.SetMemoryLimit(-1))
	entries := logs.FilterMessage("Memory budget").All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	assert.Equal(t, "memory_limit_mib", fields["source"])
	assert.Equal(t, want, fields["go_memory_limit_bytes"])
	assert.Equal(t, want/32, fields["memtable_bytes"])
	assert.Equal(t, want/8, fields["block_cache_bytes"])
	require.NoError(t, ext.Shutdown(context.Background()))
	assert.Equal(t, before, debug.SetMemoryLimit(-1), "Shutdown puts the previous limit back")
}

// A GOMEMLIMIT given by the user wins over memory_limit_mib (the runtime read it at start; the
// test sets the limit as the runtime would have).
func TestMemoryLimitKeepsGOMEMLIMIT(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "1GiB")
	prev := debug.SetMemoryLimit(1 << 30)
	defer debug.SetMemoryLimit(prev)
	ext, logs := startWithLimit(t, 300)
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	assert.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1))
	entries := logs.FilterMessage("Memory budget").All()
	require.Len(t, entries, 1)
	assert.Equal(t, "GOMEMLIMIT", entries[0].ContextMap()["source"])
	assert.Equal(t, int64(1<<30), currentMemoryLimit())
}

func TestMemoryLimitZeroLeavesRuntimeAlone(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	prev := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(prev)
	ext, logs := startWithLimit(t, 0)
	defer func() { require.NoError(t, ext.Shutdown(context.Background())) }()
	assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
	assert.Equal(t, int64(0), currentMemoryLimit())
	entries := logs.FilterMessage("Memory budget").All()
	require.Len(t, entries, 1)
	assert.Equal(t, "none", entries[0].ContextMap()["source"])
	assert.NotContains(t, entries[0].ContextMap(), "go_memory_limit_bytes")
}

// The watch warns once when the live heap passes 75 % of the limit, stays quiet while it stays
// there or hovers at the line, and warns again after it went well below and came back.
func TestHeadroomWatch(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	var live, limit int64 = 100 << 20, 256 << 20
	w := &headroomWatch{logger: zap.New(core), read: func() (int64, int64) { return live, limit }, series: func() int { return 123 }}
	steps := []struct {
		live    int64
		limit   int64
		warns   bool
		comment string
	}{
		{live: 100 << 20, limit: 256 << 20, comment: "well within"},
		{live: 200 << 20, limit: 256 << 20, warns: true, comment: "past 75 %"},
		{live: 250 << 20, limit: 256 << 20, comment: "still past: warned already"},
		{live: 180 << 20, limit: 256 << 20, comment: "just below the line: not rearmed"},
		{live: 200 << 20, limit: 256 << 20, comment: "past again without having left: quiet"},
		{live: 100 << 20, limit: 256 << 20, comment: "well below: rearmed"},
		{live: 300 << 20, limit: 256 << 20, warns: true, comment: "past again"},
		{live: 900 << 20, limit: 0, comment: "no limit: nothing to warn about"},
	}
	for _, st := range steps {
		live, limit = st.live, st.limit
		assert.Equal(t, st.warns, w.check(), st.comment)
	}
	entries := logs.All()
	require.Len(t, entries, 2)
	f := entries[0].ContextMap()
	assert.Contains(t, entries[0].Message, "raise memory_limit_mib")
	assert.Equal(t, int64(200<<20), f["live_heap_bytes"])
	assert.Equal(t, int64(256<<20), f["memory_limit_bytes"])
	assert.Equal(t, int64(123), f["head_series"])
}

func TestReadHeap(t *testing.T) {
	prev := debug.SetMemoryLimit(512 << 20)
	defer debug.SetMemoryLimit(prev)
	runtime.GC()
	live, limit := readHeap()
	assert.Equal(t, int64(512<<20), limit)
	assert.Positive(t, live, "a process has some live heap after a GC")
}
