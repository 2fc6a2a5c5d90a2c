package scrapereceiver

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/internal/passthrough"
	mreceiver "github.com/metricstor/metricstor/receiver"
)

// format is the obsreport "format" of a scrape.
const format = "prometheus_scrape"

// errStopped is what a scrape appends after Shutdown gets.
var errStopped = errors.New("prometheus receiver is shut down")

// appendable is the storage of the scrape manager: each scrape (one target, one interval,
// synthetic series and staleness markers included) appends through one appender, whose Commit
// hands everything to the next consumer at once.
type appendable struct {
	next consumer.Metrics
	// writer takes each scrape's series instead of next when the configuration allows it
	// (direct_write, passthrough.Routes); nil: pipeline data to next. Set by Start before the
	// first scrape.
	writer  passthrough.SeriesWriter
	obsrecv *receiverhelper.ObsReport
	logger  *zap.Logger

	mu     sync.RWMutex
	closed bool
}

var _ storage.AppendableV2 = (*appendable)(nil)

// AppenderV2 returns the appender of one scrape.
func (a *appendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &appender{ctx: ctx, a: a}
}

func (a *appendable) close() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
}

// appender collects one scrape in a SeriesBatch: the remote_write receiver's conversion of a
// remote write 2.0 request, so the metricstor exporter stores exactly what was appended.
type appender struct {
	ctx   context.Context
	a     *appendable
	batch *mreceiver.SeriesBatch
	// refused counts the samples Append refused (invalid series), for obsreport.
	refused int
	// family is the copy of the latest family name: the series of a family come one after the
	// other, and a copy per sample was an allocation per sample.
	family string
}

// Append adds one sample. The scrape loop has applied relabeling and limits; what is left to
// refuse is what Prometheus's TSDB refuses (an invalid native histogram, an out-of-range
// timestamp): the error is returned so that the scrape fails as it does in Prometheus.
func (ap *appender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	if ap.batch == nil {
		if ap.a.writer != nil {
			ap.batch = mreceiver.NewDirectSeriesBatch()
		} else {
			ap.batch = mreceiver.NewSeriesBatch()
		}
	}
	// The scrape loop reuses the bytes of the family name and of the exemplar slice after
	// Append returns (storage.AppendV2Options); histograms may be reused by the parser.
	family, meta := opts.MetricFamilyName, opts.Metadata
	if report, ok := strings.CutSuffix(family, "\xff"); ok {
		// A synthetic series of the scrape loop (up, scrape_*): its family name carries a
		// trailing 0xff byte. Prometheus's /api/v1/metadata has no metadata for these series
		// (it answers from the targets' scrape caches, which hold only scraped metadata), so
		// none is stored, and the query API answers as Prometheus does.
		family, meta = report, metadata.Metadata{}
	}
	if family != ap.family {
		ap.family = strings.Clone(family)
	}
	family = ap.family
	var exs []exemplar.Exemplar
	if len(opts.Exemplars) > 0 {
		exs = append([]exemplar.Exemplar(nil), opts.Exemplars...)
	}
	if h != nil {
		h = h.Copy()
	}
	if fh != nil {
		fh = fh.Copy()
	}
	if err := ap.batch.Add(ls, family, meta, st, t, v, h, fh, exs); err != nil {
		ap.refused++
		return 0, err
	}
	if ref == 0 {
		ref = storage.SeriesRef(ls.Hash())
	}
	return ref, nil
}

// Commit sends the scrape to the next consumer and returns its error: the scrape loop logs it
// and counts the scrape as failed, as it does when Prometheus's TSDB fails a commit.
func (ap *appender) Commit() error {
	if ap.batch == nil {
		ap.reportRefused()
		return nil
	}
	batch, points := ap.batch, ap.batch.Points()
	ap.batch = nil
	ap.reportRefused()
	if points == 0 {
		batch.Discard()
		return nil
	}
	ap.a.mu.RLock()
	defer ap.a.mu.RUnlock()
	if ap.a.closed {
		batch.Discard()
		return errStopped
	}
	ctx := ap.a.obsrecv.StartMetricsOp(ap.ctx)
	var err error
	if ap.a.writer != nil {
		err = batch.Write(ctx, ap.a.writer)
	} else {
		err = ap.a.next.ConsumeMetrics(ctx, batch.Finish())
	}
	ap.a.obsrecv.EndMetricsOp(ctx, format, points, err)
	return err
}

func (ap *appender) reportRefused() {
	if ap.refused == 0 {
		return
	}
	ctx := ap.a.obsrecv.StartMetricsOp(ap.ctx)
	ap.a.obsrecv.EndMetricsOp(ctx, format, ap.refused, errInvalid)
	ap.refused = 0
}

var errInvalid = errors.New("invalid series")

// Rollback discards the scrape (the scrape loop rolls back a scrape that failed).
func (ap *appender) Rollback() error {
	if ap.batch != nil {
		ap.batch.Discard()
		ap.batch = nil
	}
	ap.reportRefused()
	return nil
}
