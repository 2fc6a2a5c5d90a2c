// Package zapslog adapts the collector's zap logger to the *slog.Logger that Prometheus's packages
// want; the promql and rules extensions log through it.
package zapslog // import "github.com/metricstor/metricstor/internal/zapslog"

import (
	"context"
	"log/slog"
	"runtime"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New adapts the collector's zap logger to the *slog.Logger that Prometheus's code
// wants (go.uber.org/zap/exp/zapslog is not in the module graph).
func New(logger *zap.Logger) *slog.Logger {
	return slog.New(&zapHandler{core: logger.Core()})
}

// zapHandler is a slog.Handler writing to a zapcore.Core. Groups become dotted key prefixes.
type zapHandler struct {
	core   zapcore.Core
	prefix string // open groups, each followed by "."
}

func zapLevel(l slog.Level) zapcore.Level {
	switch {
	case l >= slog.LevelError:
		return zapcore.ErrorLevel
	case l >= slog.LevelWarn:
		return zapcore.WarnLevel
	case l >= slog.LevelInfo:
		return zapcore.InfoLevel
	default:
		return zapcore.DebugLevel
	}
}

func (h *zapHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.core.Enabled(zapLevel(l))
}

func (h *zapHandler) Handle(_ context.Context, r slog.Record) error {
	ent := zapcore.Entry{Level: zapLevel(r.Level), Time: r.Time, Message: r.Message}
	if r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		ent.Caller = zapcore.NewEntryCaller(f.PC, f.File, f.Line, true)
	}
	ce := h.core.Check(ent, nil)
	if ce == nil {
		return nil
	}
	fields := make([]zapcore.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = appendAttr(fields, h.prefix, a)
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h *zapHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zapcore.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = appendAttr(fields, h.prefix, a)
	}
	return &zapHandler{core: h.core.With(fields), prefix: h.prefix}
}

func (h *zapHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &zapHandler{core: h.core, prefix: h.prefix + name + "."}
}

func appendAttr(fields []zapcore.Field, prefix string, a slog.Attr) []zapcore.Field {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return fields
	}
	key := prefix + toSnake(a.Key)
	switch v.Kind() {
	case slog.KindGroup:
		p := prefix
		if a.Key != "" {
			p = key + "."
		}
		for _, ga := range v.Group() {
			fields = appendAttr(fields, p, ga)
		}
		return fields
	case slog.KindString:
		return append(fields, zap.String(key, v.String()))
	case slog.KindInt64:
		return append(fields, zap.Int64(key, v.Int64()))
	case slog.KindUint64:
		return append(fields, zap.Uint64(key, v.Uint64()))
	case slog.KindFloat64:
		return append(fields, zap.Float64(key, v.Float64()))
	case slog.KindBool:
		return append(fields, zap.Bool(key, v.Bool()))
	case slog.KindDuration:
		return append(fields, zap.Duration(key, v.Duration()))
	case slog.KindTime:
		return append(fields, zap.Time(key, v.Time()))
	default:
		if err, ok := v.Any().(error); ok {
			return append(fields, zap.NamedError(key, err))
		}
		return append(fields, zap.Any(key, v.Any()))
	}
}

// toSnake turns Prometheus's occasional camelCase log keys (bytesWritten) into the snake_case the
// collector uses (bytes_written).
func toSnake(s string) string {
	hasUpper := false
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			hasUpper = true
			break
		}
	}
	if !hasUpper {
		return s
	}
	var b strings.Builder
	prevLower := false // the previous character was a lowercase letter or a digit
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(c + ('a' - 'A'))
			prevLower = false
			continue
		}
		b.WriteRune(c)
		prevLower = c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
	}
	return b.String()
}
