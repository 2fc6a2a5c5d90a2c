package tsdb

import (
	"context"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// appenderV1 adapts Appender to Prometheus's older storage.Appender interface, which
// storage.Storage still requires. Everything goes through the V2 path.
type appenderV1 struct {
	*Appender
	opts storage.AppendOptions
}

// Appender implements storage.Appendable.
func (db *DB) Appender(context.Context) storage.Appender {
	return &appenderV1{Appender: db.NewAppender()}
}

func (a *appenderV1) SetOptions(o *storage.AppendOptions) {
	if o != nil {
		a.opts = *o
	}
}

func (a *appenderV1) v2opts() storage.AppendV2Options {
	return storage.AppendV2Options{RejectOutOfOrder: a.opts.DiscardOutOfOrder}
}

func (a *appenderV1) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	return a.Appender.Append(ref, l, 0, t, v, nil, nil, a.v2opts())
}

func (a *appenderV1) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return a.Appender.Append(ref, l, 0, t, 0, h, fh, a.v2opts())
}

// AppendExemplar attaches an exemplar to a series that has been appended to.
func (a *appenderV1) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	s, err := a.series(ref, l)
	if err != nil {
		return 0, err
	}
	return storage.SeriesRef(s.ref), a.addExemplar(s, e)
}

func (a *appenderV1) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	s, err := a.series(ref, l)
	if err != nil {
		return 0, err
	}
	a.addMetadata(s.lset, "", m)
	return storage.SeriesRef(s.ref), nil
}

// AppendSTZeroSample stores the zero sample that marks a counter's start, as Prometheus does.
func (a *appenderV1) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	if st >= t {
		return 0, storage.ErrSTNewerThanSample
	}
	return a.Appender.Append(ref, l, 0, st, 0, nil, nil, a.v2opts())
}

func (a *appenderV1) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if st >= t {
		return 0, storage.ErrSTNewerThanSample
	}
	if fh != nil {
		return a.Appender.Append(ref, l, 0, st, 0, nil, &histogram.FloatHistogram{
			CounterResetHint: histogram.CounterReset, Schema: fh.Schema, ZeroThreshold: fh.ZeroThreshold,
			CustomValues: fh.CustomValues}, a.v2opts())
	}
	return a.Appender.Append(ref, l, 0, st, 0, &histogram.Histogram{
		CounterResetHint: histogram.CounterReset, Schema: h.Schema, ZeroThreshold: h.ZeroThreshold,
		CustomValues: h.CustomValues}, nil, a.v2opts())
}

// StartTime implements storage.Storage: the start of the oldest partition.
func (db *DB) StartTime() (int64, error) { return db.MinTime(), nil }
