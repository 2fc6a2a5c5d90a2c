package exporter

import (
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"

	"github.com/metricstor/metricstor/storage"
)

// rejectReason is why the store refused one sample. Its String is the `reason` attribute of the
// metricstor_exporter_samples_rejected counter.
type rejectReason int

const (
	reasonOutOfOrder rejectReason = iota
	reasonTooOld
	reasonDuplicate
	reasonOutOfBounds
	reasonInvalidHistogram
	reasonNativeHistogramsDisabled
	reasonInvalidSample
	reasonLimitExceeded
	numRejectReasons
)

var rejectReasonNames = [numRejectReasons]string{
	reasonOutOfOrder:               "out_of_order",
	reasonTooOld:                   "too_old",
	reasonDuplicate:                "duplicate",
	reasonOutOfBounds:              "out_of_bounds",
	reasonInvalidHistogram:         "invalid_histogram",
	reasonNativeHistogramsDisabled: "native_histograms_disabled",
	reasonInvalidSample:            "invalid_sample",
	reasonLimitExceeded:            "limit_exceeded",
}

func (r rejectReason) String() string { return rejectReasonNames[r] }

// classifyAppendError tells whether err rejects just the one sample (ok is true) and why. Any other
// error is fatal for the batch: the store is not running, a context ended, or something unknown.
func classifyAppendError(err error) (rejectReason, bool) {
	var hErr histogram.Error
	switch {
	case errors.Is(err, promstorage.ErrOutOfOrderSample):
		return reasonOutOfOrder, true
	case errors.Is(err, promstorage.ErrTooOldSample):
		return reasonTooOld, true
	case errors.Is(err, promstorage.ErrDuplicateSampleForTimestamp):
		return reasonDuplicate, true
	case errors.Is(err, promstorage.ErrOutOfBounds):
		return reasonOutOfBounds, true
	case errors.Is(err, promstorage.ErrNativeHistogramsDisabled):
		return reasonNativeHistogramsDisabled, true
	case errors.Is(err, storage.ErrInvalidSample):
		return reasonInvalidSample, true
	case errors.Is(err, storage.ErrLimitExceeded):
		return reasonLimitExceeded, true
	case errors.As(err, &hErr):
		return reasonInvalidHistogram, true
	}
	return 0, false
}

// countingAppender sits between the translator and the store's appender for one push.
//
// The translator stops converting the remaining data points of a metric at the first Append error.
// So that one rejected sample does not drop its neighbours, countingAppender swallows per-sample
// rejections (counting them and keeping the first of each reason for the error message) and hands
// the translator only fatal errors. After a fatal error every further Append fails fast with the
// same error. Partial errors (some exemplars refused) count the sample as accepted and the
// refused exemplars as not.
//
// It is not safe for concurrent use; one push owns it between reset and the end of the push.
type countingAppender struct {
	app promstorage.AppenderV2

	accepted           int // samples and histograms
	acceptedHistograms int // of accepted, native histograms
	acceptedExemplars  int
	rejected           [numRejectReasons]int
	firstRejected      [numRejectReasons]error // the first rejection of each reason, with series and timestamp
	fatal              error                   // the first fatal error; the batch must be rolled back

	// translating is set while Prometheus's OTLP translator appends (not for pass-through data):
	// only then is target_info bounded, see maxTargetInfoSamples.
	translating    bool
	targetInfoHash uint64 // labels hash of the target_info series being appended
	targetInfoRun  int    // samples appended in a row to that series
}

// maxTargetInfoSamples bounds the target_info samples the translator writes for one resource of
// one batch. It writes one every lookback_delta/2 from the resource's earliest to its latest data
// point, and remembers each in a map: a request of two data points 50 years apart made 11 million
// samples and took 75 s (found while fuzzing the exporter; the request is a seed of FuzzPushProto).
// 10,000 is 17 days at the default 5m lookback.
// Past it, Append fails: the translator stops that resource's target_info and reports the error,
// the rest of the batch is committed and the push returns a permanent error.
const maxTargetInfoSamples = 10_000

const targetInfoName = "target_info"

var _ promstorage.AppenderV2 = (*countingAppender)(nil)

func (a *countingAppender) reset(app promstorage.AppenderV2) {
	*a = countingAppender{app: app}
}

func (a *countingAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if a.fatal != nil {
		return 0, a.fatal
	}
	if a.translating && opts.MetricFamilyName == targetInfoName {
		// The translator appends a resource's target_info samples one after the other.
		if hash := ls.Hash(); hash != a.targetInfoHash || a.targetInfoRun == 0 {
			a.targetInfoHash, a.targetInfoRun = hash, 0
		}
		a.targetInfoRun++
		if a.targetInfoRun > maxTargetInfoSamples {
			return 0, fmt.Errorf("%s %s: the data points of its resource span more than %d target_info samples (one per lookback_delta/2) in one batch; no more written from %d", targetInfoName, ls.String(), maxTargetInfoSamples, t)
		}
	}
	ref, err := a.app.Append(ref, ls, st, t, v, h, fh, opts)
	return a.count(ref, err, ls, nil, t, h != nil || fh != nil, len(opts.Exemplars))
}

// labelSource builds the labels of the series appendRef appends to.
type labelSource interface{ seriesLabels() labels.Labels }

// appendRef appends a sample of the series the store gave ref, without its labels (see
// seriesCache). src builds them when the store no longer holds the series in memory
// (storage.ErrUnknownSeriesRef: it is appended again with them) and for the message of a
// rejection. Prometheus's head would refuse such an unknown ref as an invalid sample instead; the
// exporter writes only to the metricstor store.
func (a *countingAppender) appendRef(ref promstorage.SeriesRef, src labelSource, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if a.fatal != nil {
		return 0, a.fatal
	}
	got, err := a.app.Append(ref, labels.EmptyLabels(), st, t, v, h, fh, opts)
	if err != nil && errors.Is(err, storage.ErrUnknownSeriesRef) {
		return a.Append(0, src.seriesLabels(), st, t, v, h, fh, opts)
	}
	return a.count(got, err, labels.EmptyLabels(), src, t, h != nil || fh != nil, len(opts.Exemplars))
}

// count records the outcome of one Append of a sample at t (a histogram when hist) with
// exemplars exemplars: accepted, rejected (the first rejection of each reason is kept, naming the
// series by ls, or by src when not nil), or fatal.
func (a *countingAppender) count(ref promstorage.SeriesRef, err error, ls labels.Labels, src labelSource, t int64, hist bool, exemplars int) (promstorage.SeriesRef, error) {
	// errors.AsType, not errors.As with a local: the pointer errors.As takes made the local
	// escape, an allocation per sample even when Append succeeds.
	partial, isPartial := errors.AsType[*promstorage.AppendPartialError](err)
	if err == nil || isPartial {
		a.accepted++
		if hist {
			a.acceptedHistograms++
		}
		a.acceptedExemplars += exemplars
		if isPartial {
			a.acceptedExemplars -= refusedExemplars(partial)
		}
		return ref, nil
	}
	if reason, ok := classifyAppendError(err); ok {
		a.rejected[reason]++
		if a.firstRejected[reason] == nil {
			if src != nil {
				ls = src.seriesLabels()
			}
			a.firstRejected[reason] = fmt.Errorf("series %s at %d: %w", ls.String(), t, err)
		}
		return 0, nil
	}
	a.fatal = err
	return 0, err
}

// refusedExemplars counts the distinct exemplars p refused; several entries may share an index.
func refusedExemplars(p *promstorage.AppendPartialError) int {
	n := 0
	for i, e := range p.ExemplarErrors {
		if !slices.ContainsFunc(p.ExemplarErrors[:i], func(prev promstorage.ExemplarError) bool { return prev.Index == e.Index }) {
			n++
		}
	}
	return n
}

func (a *countingAppender) Commit() error   { return a.app.Commit() }
func (a *countingAppender) Rollback() error { return a.app.Rollback() }

func (a *countingAppender) totalRejected() int {
	n := 0
	for _, c := range a.rejected {
		n += c
	}
	return n
}
