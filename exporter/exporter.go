package exporter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	prw "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"github.com/prometheus/prometheus/util/annotations"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/exporter/internal/metadata"
	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

const maxLoggedWarnings = 10

// seriesCacheSize bounds the series the exporter remembers per generation of its cache (see
// seriesCache): enough for the active series of a large single node, about 50 bytes each (5 MB
// at 100k series: 24-byte slots, from 3/8 to 3/4 full).
const seriesCacheSize = 1 << 17

// metricstorExporter converts and writes one batch per push, synchronously.
type metricstorExporter struct {
	cfg    *Config
	id     component.ID // of the exporter in the configuration; its SeriesWriter is registered by it
	logger *zap.Logger
	// settings are built once from cfg at creation and never change.
	settings prw.Settings

	// store is set by start, before any push, and never changes afterwards.
	store storage.Store
	// registry holds the exporter's SeriesWriter from start to shutdown; nil when it does not.
	registry passthrough.Registry

	// pool holds pushStates (a converter and its counting appender) between pushes.
	pool sync.Pool
	// series maps data points of the remote_write receiver to the store's series; the refs in it
	// are the store's, which never changes after start.
	series *seriesCache

	accepted     metric.Int64Counter
	rejected     metric.Int64Counter
	rejectedOpts [numRejectReasons]metric.AddOption
}

// pushState is what one push needs and can reuse for the next one.
type pushState struct {
	conv    *prw.PrometheusConverter
	app     countingAppender
	builder labels.ScratchBuilder // labels of passthrough data points
	key     []byte                // series identity of a passthrough data point, see rwMetric
	batch   lookupScratch
	metric  rwMetric     // the metric being written, see writeRemoteWrite
	direct  directSeries // the series being written, see writeSeries
}

// lookupScratch is the buffers of rwMetric.lookupBatch, reused from push to push.
type lookupScratch struct {
	keys  []byte
	ends  []int
	look  []cacheLookup
	order []int32
}

func newMetricstorExporter(cfg *Config, set component.TelemetrySettings) (*metricstorExporter, error) {
	meter := set.MeterProvider.Meter(metadata.ScopeName)
	accepted, err := meter.Int64Counter("metricstor_exporter_samples_accepted",
		metric.WithDescription("Samples written to the store and committed."),
		metric.WithUnit("{sample}"))
	if err != nil {
		return nil, fmt.Errorf("metricstor exporter: create accepted counter: %w", err)
	}
	rejected, err := meter.Int64Counter("metricstor_exporter_samples_rejected",
		metric.WithDescription("Samples the store rejected one by one, by reason."),
		metric.WithUnit("{sample}"))
	if err != nil {
		return nil, fmt.Errorf("metricstor exporter: create rejected counter: %w", err)
	}
	e := &metricstorExporter{
		cfg:      cfg,
		logger:   set.Logger,
		settings: translatorSettings(cfg),
		accepted: accepted,
		rejected: rejected,
		series:   newSeriesCache(seriesCacheSize),
		pool: sync.Pool{New: func() any {
			return &pushState{conv: prw.NewPrometheusConverter(nil), builder: labels.NewScratchBuilder(16)}
		}},
	}
	for r := range numRejectReasons {
		e.rejectedOpts[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r.String())))
	}
	return e, nil
}

// translatorSettings maps the configuration onto the translator the way Prometheus's OTLP write
// handler maps its `otlp:` block.
func translatorSettings(cfg *Config) prw.Settings {
	return prw.Settings{
		AddMetricSuffixes: cfg.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:         !cfg.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes: prw.NewPromoteResourceAttributes(config.OTLPConfig{
			PromoteAllResourceAttributes: cfg.PromoteAllResourceAttributes,
			PromoteResourceAttributes:    trimmed(cfg.PromoteResourceAttributes),
			IgnoreResourceAttributes:     trimmed(cfg.IgnoreResourceAttributes),
		}),
		KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
		ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
		PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
		DisableTargetInfo:                    !cfg.TargetInfo,
		AllowDeltaTemporality:                cfg.AllowDeltaTemporality,
		LookbackDelta:                        cfg.LookbackDelta,
		EnableTypeAndUnitLabels:              cfg.EnableTypeAndUnitLabels,
		LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
	}
}

// trimmed returns a copy of attrs with surrounding spaces removed, as Prometheus does on load.
func trimmed(attrs []string) []string {
	if len(attrs) == 0 {
		return nil
	}
	out := make([]string, len(attrs))
	for i, a := range attrs {
		out[i] = strings.TrimSpace(a)
	}
	return out
}

func (e *metricstorExporter) start(_ context.Context, host component.Host) error {
	ext, ok := host.GetExtensions()[e.cfg.Storage]
	if !ok {
		return fmt.Errorf("metricstor exporter: storage extension %q not found", e.cfg.Storage.String())
	}
	store, ok := ext.(storage.Store)
	if !ok {
		return fmt.Errorf("metricstor exporter: extension %q is not a metricstor storage (it is %T)", e.cfg.Storage.String(), ext)
	}
	e.store = store
	e.logger.Info("Writing metrics to the metricstor store", zap.String("storage", e.cfg.Storage.String()))
	// A remote_write receiver whose pipeline ends here with nothing in between may hand its
	// series to WriteSeries instead of the pipeline (passthrough.Routes decides from the
	// configuration). Only a synchronous exporter offers it: with a sending queue or retries the
	// pipeline answers at another moment than WriteSeries would.
	if reg, ok := ext.(passthrough.Registry); ok && e.synchronous() {
		reg.RegisterSeriesWriter(e.id, e)
		e.registry = reg
	}
	return nil
}

// synchronous tells whether a push writes and commits before it returns, and only once.
func (e *metricstorExporter) synchronous() bool {
	return !e.cfg.QueueConfig.HasValue() && !e.cfg.RetryConfig.Enabled
}

func (e *metricstorExporter) shutdown(context.Context) error {
	// Nothing else to release: the store belongs to its extension, and every push commits or
	// rolls back its appender before returning.
	if e.registry != nil {
		e.registry.RegisterSeriesWriter(e.id, nil)
	}
	return nil
}

// pushMetrics converts md into one appender of the store and commits it.
//
// Samples the store rejects one by one (out of order, too old, duplicate timestamp, over a
// configured limit) are counted and the rest of the batch is committed; the push then returns a
// permanent error naming what was rejected (refusedError: OTLP InvalidArgument / 400), so the
// pipeline does not retry data the store will never take. The same holds for metrics the
// translator cannot convert (for instance delta temporality when allow_delta_temporality is off).
// A store that is not running or refuses writes for now (storage.ErrUnavailable), a failed commit,
// or a context that ended during conversion rolls the whole batch back and returns a retryable
// error (unavailableError: OTLP Unavailable / 503). See errors.go.
func (e *metricstorExporter) pushMetrics(ctx context.Context, md pmetric.Metrics) error {
	if e.store == nil {
		return unavailableError(errors.New("metricstor exporter: not started"))
	}
	st := e.pool.Get().(*pushState)
	defer func() {
		st.conv.Reset(nil)
		st.app.reset(nil)
		e.pool.Put(st)
	}()

	app := e.store.AppenderV2(ctx)
	st.app.reset(app)
	st.conv.Reset(&st.app)
	// Data of the remote_write receiver is written back as the series it came from; the rest goes
	// through Prometheus's OTLP translator.
	rest, hasRW := splitRemoteWrite(md)
	var rwFatal, rwInvalid error
	if hasRW {
		rwFatal, rwInvalid = writeRemoteWrite(ctx, md, &st.app, e.series, st)
	}
	var annots annotations.Annotations
	var convErr error
	if rwFatal == nil && !(hasRW && rest.ResourceMetrics().Len() == 0) {
		st.app.translating = true
		annots, convErr = st.conv.FromMetrics(ctx, rest, e.settings)
		st.app.translating = false
	}
	convErr = errors.Join(rwInvalid, convErr)
	if len(annots) > 0 {
		ws, _ := annots.AsStrings("", maxLoggedWarnings, 0)
		e.logger.Warn("Warnings translating OTLP metrics to Prometheus series",
			zap.Int("warnings", len(annots)), zap.Strings("first_warnings", ws))
	}

	return e.finish(ctx, app, &st.app, rwFatal, convErr)
}

// finish commits what a push appended through ca (app being the store's appender under it) and
// returns the push's outcome, as pushMetrics describes: fatal (an error that stopped writing,
// or nil) or a fatal error of ca rolls everything back; convErr names data that could not be
// written, which makes the committed push a partial failure.
func (e *metricstorExporter) finish(ctx context.Context, app promstorage.AppenderV2, ca *countingAppender, fatal, convErr error) error {
	if ca.fatal != nil {
		fatal = ca.fatal
	}
	if fatal == nil && (errors.Is(convErr, context.Canceled) || errors.Is(convErr, context.DeadlineExceeded)) {
		fatal = convErr
	}
	if fatal != nil {
		if rbErr := app.Rollback(); rbErr != nil && !errors.Is(rbErr, storage.ErrNotRunning) {
			e.logger.Debug("Rollback failed", zap.Error(rbErr))
		}
		return unavailableError(fmt.Errorf("metricstor exporter: write to storage %q: %w", e.cfg.Storage.String(), fatal))
	}
	if err := app.Commit(); err != nil {
		err = fmt.Errorf("metricstor exporter: commit %d samples to storage %q: %w", ca.accepted, e.cfg.Storage.String(), err)
		// The store's contract refuses limits and invalid samples per series from Append; should a
		// commit be refused for such a reason, nothing is stored and a retry would be refused again.
		if errors.Is(err, storage.ErrLimitExceeded) || errors.Is(err, storage.ErrInvalidSample) {
			return refusedError(err)
		}
		return unavailableError(err)
	}

	if ca.accepted > 0 {
		e.accepted.Add(ctx, int64(ca.accepted))
	}
	rejected := ca.totalRejected()
	for r, n := range ca.rejected {
		if n > 0 {
			e.rejected.Add(ctx, int64(n), e.rejectedOpts[r])
		}
	}
	if rejected == 0 && convErr == nil {
		return nil
	}
	return e.partialFailure(ca, rejected, convErr)
}

// partialFailure logs once and builds the permanent error of a push whose good part was committed.
// The message names the count per reason and the first rejected series of each reason (which
// names the limit for limit_exceeded).
func (e *metricstorExporter) partialFailure(app *countingAppender, rejected int, convErr error) error {
	fields := []zap.Field{
		zap.Int("samples_accepted", app.accepted),
		zap.Int("samples_rejected", rejected),
	}
	var counts []string
	var firsts []error
	for r, n := range app.rejected {
		if n > 0 {
			name := rejectReason(r).String()
			fields = append(fields, zap.Int(name, n))
			counts = append(counts, fmt.Sprintf("%s=%d", name, n))
			firsts = append(firsts, fmt.Errorf("first %s: %w", name, app.firstRejected[r]))
		}
	}
	var errs []error
	if rejected > 0 {
		fields = append(fields, zap.Errors("first_rejections", firsts))
		errs = append(errs, fmt.Errorf("store rejected %d of %d samples (%s), the other %d were stored; %w",
			rejected, rejected+app.accepted, strings.Join(counts, ", "), app.accepted, joinSemicolon(firsts)))
	}
	if convErr != nil {
		fields = append(fields, zap.NamedError("translation_error", convErr))
		errs = append(errs, fmt.Errorf("untranslatable metrics dropped: %w", convErr))
	}
	e.logger.Warn("Part of a batch was not stored; the rest was committed", fields...)
	return refusedError(&passthrough.PartialWriteError{
		Err:        fmt.Errorf("metricstor exporter: %w", errors.Join(errs...)),
		Samples:    app.accepted - app.acceptedHistograms,
		Histograms: app.acceptedHistograms,
		Exemplars:  app.acceptedExemplars,
	})
}

// semicolonJoined joins errors on one line (errors.Join puts each on its own line), keeping
// them all for errors.Is.
type semicolonJoined []error

func joinSemicolon(errs []error) error { return semicolonJoined(errs) }

func (j semicolonJoined) Error() string {
	var b strings.Builder
	for i, err := range j {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (j semicolonJoined) Unwrap() []error { return j }
