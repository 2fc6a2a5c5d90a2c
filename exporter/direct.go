package exporter

import (
	"context"
	"errors"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// Series of the remote_write receiver written without pipeline data (passthrough.SeriesWriter):
// the receiver's pipeline ends at this exporter with nothing in between, so what
// writeRemoteWrite would read from the pipeline data is exactly what the receiver validated.
// WriteSeries writes it the same way: the same labels (empty values dropped), metadata and
// metric family, exemplars with the last sample, stale markers, start timestamps, through the
// same series cache (the identity of a series encodes as rwMetric.key does, so both paths
// share the cache's entries), committed and reported by finish, as a push.

var _ passthrough.SeriesWriter = (*metricstorExporter)(nil)

// WriteSeries implements passthrough.SeriesWriter. The exporter's timeout applies, as
// exporterhelper applies it to a push.
func (e *metricstorExporter) WriteSeries(ctx context.Context, series []passthrough.Series) error {
	if e.store == nil {
		return unavailableError(errors.New("metricstor exporter: not started"))
	}
	if e.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.cfg.Timeout)
		defer cancel()
	}
	st := e.pool.Get().(*pushState)
	defer func() {
		st.app.reset(nil)
		st.direct = directSeries{}
		e.pool.Put(st)
	}()
	app := e.store.AppenderV2(ctx)
	st.app.reset(app)
	fatal := writeSeries(ctx, series, &st.app, e.series, st)
	return e.finish(ctx, app, &st.app, fatal, nil)
}

// directSeries is the series WriteSeries is appending; it builds its labels (labelSource).
type directSeries struct {
	s *passthrough.Series
	b *labels.ScratchBuilder
}

// seriesLabels builds the labels of the series, never in a reused buffer: the store keeps them.
func (d *directSeries) seriesLabels() labels.Labels {
	d.b.Reset()
	for _, l := range d.s.Labels {
		if l.Value != "" {
			d.b.Add(l.Name, l.Value)
		}
	}
	return d.b.Labels() // already sorted by name (passthrough.Series)
}

// writeSeries appends every sample and histogram of series through app; a fatal append error
// (or the end of ctx) stops it and is returned.
func writeSeries(ctx context.Context, series []passthrough.Series, app *countingAppender, cache *seriesCache, st *pushState) error {
	look := lookupSeries(series, cache, st)
	d := &st.direct
	for i := range series {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := &series[i]
		*d = directSeries{s: s, b: &st.builder}
		opts := promstorage.AOptions{MetricFamilyName: s.Name}
		if s.HasMetadata {
			opts.Metadata = s.Metadata
			if opts.Metadata.Type == "" {
				opts.Metadata.Type = model.MetricTypeUnknown
			}
			if s.Family != "" {
				opts.MetricFamilyName = s.Family
			}
		}
		l := &look[i]
		if !l.found {
			// An earlier entry of the request may have been of the same series and cached it.
			l.ref, l.found = cache.get(l.fp)
		}
		exemplars := directExemplars(s.Exemplars)
		for j, smp := range s.Samples {
			o := opts
			if j == len(s.Samples)-1 {
				o.Exemplars = exemplars
			}
			if err := appendCached(app, cache, d, l, smp.ST, smp.T, smp.V, nil, nil, o); err != nil {
				return err
			}
		}
		for j, h := range s.Histograms {
			o := opts
			if len(s.Samples) == 0 && j == len(s.Histograms)-1 {
				o.Exemplars = exemplars
			}
			if err := appendCached(app, cache, d, l, h.ST, h.T, 0, h.H, h.FH, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// lookupSeries looks up the series of every entry of series in one batch (see lookupNumbers).
func lookupSeries(series []passthrough.Series, cache *seriesCache, st *pushState) []cacheLookup {
	b := &st.batch
	b.look = slices.Grow(b.look[:0], len(series))[:len(series)]
	for i := range series {
		s := &series[i]
		b.keys = metricKey(b.keys[:0], s.Name, s.Job, s.Instance)
		for _, l := range s.Labels {
			switch l.Name {
			case model.MetricNameLabel, model.JobLabel, model.InstanceLabel:
				continue
			}
			if l.Value != "" {
				b.keys = appendKeyString(appendKeyString(b.keys, l.Name), l.Value)
			}
		}
		b.look[i] = cacheLookup{fp: cache.fingerprint(b.keys)}
	}
	b.order = cache.getBatch(b.look, b.order)
	return b.look
}

// directExemplars are exemplars as writeRemoteWrite reads them back from pipeline data: without
// a timestamp when it is 0, sorted.
func directExemplars(exs []exemplar.Exemplar) []exemplar.Exemplar {
	if len(exs) == 0 {
		return nil
	}
	out := make([]exemplar.Exemplar, len(exs))
	for i, e := range exs {
		if !e.HasTs {
			e.Ts = 0
		}
		e.HasTs = e.Ts != 0
		out[i] = e
	}
	slices.SortFunc(out, exemplar.Compare)
	return out
}
