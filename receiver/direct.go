package receiver

import (
	"github.com/prometheus/prometheus/model/exemplar"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// directBuffers hold the valid series of a request for a passthrough.SeriesWriter, when the
// receiver writes without pipeline data (see passthrough.Routes). Labels, samples and histograms
// of all series go into three arrays reused from request to request; a series is its ranges in
// them until directSeries makes the slices, once the arrays have stopped growing.
type directBuffers struct {
	series     []passthrough.Series
	spans      []directSpan
	labels     []passthrough.Label
	samples    []passthrough.Sample
	histograms []passthrough.Histogram
}

// directSpan is where the labels, samples and histograms of series[i] are in the arrays.
type directSpan struct{ labels, samples, histograms [2]int }

// addDirect keeps the valid series s. Its strings are the request's (1.0's label buffer or 2.0's
// symbols), which live until the request is answered; its slices are copied, as the converter
// reuses them for the next series.
func (c *converter) addDirect(s *series) {
	if len(s.samples) == 0 && len(s.histograms) == 0 {
		return // nothing to write (exemplars alone are rejected by addSeries)
	}
	d := &c.dir
	var sp directSpan
	sp.labels[0] = len(d.labels)
	for _, l := range s.lbls {
		d.labels = append(d.labels, passthrough.Label{Name: l.name, Value: l.value})
	}
	sp.labels[1] = len(d.labels)
	sp.samples[0] = len(d.samples)
	for _, smp := range s.samples {
		d.samples = append(d.samples, passthrough.Sample{ST: smp.st, T: smp.t, V: smp.v})
	}
	sp.samples[1] = len(d.samples)
	sp.histograms[0] = len(d.histograms)
	for _, h := range s.histograms {
		d.histograms = append(d.histograms, passthrough.Histogram{ST: h.st, T: h.t, H: h.h, FH: h.fh})
	}
	sp.histograms[1] = len(d.histograms)
	ps := passthrough.Series{
		Name:        s.name,
		Job:         s.job,
		Instance:    s.instance,
		Metadata:    s.meta,
		HasMetadata: s.hasMeta,
		Family:      s.family,
	}
	if len(s.exemplars) > 0 {
		ps.Exemplars = append([]exemplar.Exemplar(nil), s.exemplars...)
	}
	d.series = append(d.series, ps)
	d.spans = append(d.spans, sp)
}

// directSeries returns the series kept by addDirect, valid until the converter is released.
func (c *converter) directSeries() []passthrough.Series {
	d := &c.dir
	for i, sp := range d.spans {
		s := &d.series[i]
		s.Labels = d.labels[sp.labels[0]:sp.labels[1]:sp.labels[1]]
		s.Samples = d.samples[sp.samples[0]:sp.samples[1]:sp.samples[1]]
		s.Histograms = d.histograms[sp.histograms[0]:sp.histograms[1]:sp.histograms[1]]
	}
	return d.series
}

// reset empties the buffers for the next request, dropping those a large request grew past the
// pool's bounds (maxPooledSeries, maxPooledItems).
func (d *directBuffers) reset() {
	if cap(d.series) > maxPooledSeries || cap(d.labels) > maxPooledItems || cap(d.samples) > maxPooledItems {
		*d = directBuffers{}
		return
	}
	clear(d.series)
	clear(d.labels)
	clear(d.histograms)
	d.series, d.spans, d.labels, d.samples, d.histograms = d.series[:0], d.spans[:0], d.labels[:0], d.samples[:0], d.histograms[:0]
}
