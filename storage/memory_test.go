package storage

import (
	"context"
	"math"
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
		{name: "default", limitMiB: 256, want: memorySizes{limit: 256 * mib, memTable: 8 * mib, cache: 32 * mib}},
		{name: "small", limitMiB: 160, want: memorySizes{limit: 160 * mib, memTable: 5 * mib, cache: 20 * mib}},
		{name: "smallest", limitMiB: 64, want: memorySizes{limit: 64 * mib, memTable: 2 * mib, cache: 8 * mib}},
		{name: "large: memtables capped", limitMiB: 4096, want: memorySizes{limit: 4096 * mib, memTable: 64 * mib, cache: 512 * mib}},
		{name: "cache set", limitMiB: 1024, cache: 64, want: memorySizes{limit: 1024 * mib, memTable: 32 * mib, cache: 64 * mib}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sizeMemory(tt.limitMiB, tt.cache))
		})
	}
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
	ext, logs := startWithLimit(t, 300)
	assert.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	entries := logs.FilterMessage("Memory budget").All()
	require.Len(t, entries, 1)
	fields := entries[0].ContextMap()
	assert.Equal(t, "memory_limit_mib", fields["source"])
	assert.Equal(t, int64(300<<20), fields["go_memory_limit_bytes"])
	assert.Equal(t, int64(300<<20/32), fields["memtable_bytes"])
	assert.Equal(t, int64(300<<20/8), fields["block_cache_bytes"])
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
