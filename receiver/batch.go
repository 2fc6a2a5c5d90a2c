package receiver

import (
	"context"
	"errors"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// SeriesBatch converts Prometheus samples given one at a time (as a storage.AppenderV2 receives
// them) into pipeline data in the passthrough encoding (../internal/passthrough), with exactly the
// conversion and validation of a remote write 2.0 request: the metricstor exporter writes it back
// as the same series, values, histograms, exemplars, metadata and staleness markers. The scrape
// receiver (../scrapereceiver) builds one per scrape.
//
// A SeriesBatch is used by one goroutine; Finish or Discard ends it.
type SeriesBatch struct {
	c      *converter
	points int
}

// NewSeriesBatch returns an empty batch of pipeline data (Finish).
func NewSeriesBatch() *SeriesBatch {
	return &SeriesBatch{c: newConverter(nil)}
}

// NewDirectSeriesBatch returns an empty batch whose series are written by a
// passthrough.SeriesWriter (Write) without becoming pipeline data, as the remote_write
// receiver's direct_write does.
func NewDirectSeriesBatch() *SeriesBatch {
	b := NewSeriesBatch()
	b.c.direct = true
	return b
}

// Add converts one sample of the series ls: a float (h and fh nil), an integer histogram (h) or
// a float histogram (fh), with its start timestamp st (0: unknown), exemplars and metadata.
// family is the metric family the metadata belongs to ("" or the metric name when it is its own
// family); meta with Type "" and no help or unit means no metadata. Strings of ls, meta and
// family are kept until Finish: the caller must not reuse their bytes. An invalid series (no
// name, bad labels, an out-of-range timestamp, an invalid native histogram) is not added and
// its error returned, in the words of the remote_write receiver.
func (b *SeriesBatch) Add(ls labels.Labels, family string, meta metadata.Metadata, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, exemplars []exemplar.Exemplar) error {
	c := b.c
	s := &c.s
	s.reset()
	var high uint64
	ls.Range(func(l labels.Label) {
		s.lbls = append(s.lbls, label{name: l.Name, value: l.Value})
		high |= highBitsString(l.Name) | highBitsString(l.Value)
	})
	s.ascii = high == 0 // validation then skips the UTF-8 checks: 7 % of a scrape's CPU
	s.meta = meta
	s.hasMeta = meta.Type != "" || meta.Unit != "" || meta.Help != ""
	if family == "" {
		family = familyOf(ls.Get(model.MetricNameLabel), meta.Type)
	}
	s.family = family
	n := 1 + len(exemplars)
	switch {
	case fh != nil:
		s.histograms = append(s.histograms, histV{st: st, t: t, fh: fh})
	case h != nil:
		s.histograms = append(s.histograms, histV{st: st, t: t, h: h})
	default:
		c.v2samples = append(c.v2samples[:0], sampleV{st: st, t: t, v: v})
		s.samples = c.v2samples
	}
	s.exemplars = append(s.exemplars, exemplars...)
	before := len(c.errs)
	c.addSeries(s, n)
	if len(c.errs) > before {
		return errors.New(c.errs[len(c.errs)-1])
	}
	b.points++
	return nil
}

// Points is the number of samples and histograms added so far.
func (b *SeriesBatch) Points() int { return b.points }

// Finish returns the pipeline data of everything added and ends the batch.
func (b *SeriesBatch) Finish() pmetric.Metrics {
	md := b.c.md
	b.c.release()
	b.c = nil
	return md
}

// Write writes everything added to a batch of NewDirectSeriesBatch with w, ends the batch and
// returns w's error.
func (b *SeriesBatch) Write(ctx context.Context, w passthrough.SeriesWriter) error {
	err := w.WriteSeries(ctx, b.c.directSeries())
	b.c.release()
	b.c = nil
	return err
}

// Discard ends the batch without using its data.
func (b *SeriesBatch) Discard() {
	if b.c != nil {
		b.c.release()
		b.c = nil
	}
}
