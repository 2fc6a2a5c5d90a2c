package zapslog

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestSlogAdapter(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	logger := New(zap.New(core)).With("component", "api").WithGroup("req")

	logger.Debug("dropped below the zap level")
	logger.Error("error writing response", "bytesWritten", 3, "err", errors.New("broken pipe"),
		slog.Group("q", "expr", "up"))
	logger.Info("plain", "ok", true)

	entries := logs.AllUntimed()
	require.Len(t, entries, 2)
	assert.Equal(t, zapcore.ErrorLevel, entries[0].Level)
	assert.Equal(t, "error writing response", entries[0].Message)
	assert.True(t, entries[0].Caller.Defined)
	assert.Equal(t, map[string]any{
		"component":         "api",
		"req.bytes_written": int64(3),
		"req.err":           "broken pipe",
		"req.q.expr":        "up",
	}, entries[0].ContextMap())
	assert.Equal(t, map[string]any{"component": "api", "req.ok": true}, entries[1].ContextMap())
}

func TestToSnake(t *testing.T) {
	for in, want := range map[string]string{
		"err": "err", "bytesWritten": "bytes_written", "GOMAXPROCS": "gomaxprocs", "remoteAddr2URL": "remote_addr2_url", "already_snake": "already_snake",
	} {
		assert.Equal(t, want, toSnake(in), in)
	}
}
