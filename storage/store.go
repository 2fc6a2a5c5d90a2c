package storage

import (
	"context"

	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/metricstor/metricstor/storage/internal/tsdb"
)

// Store is what the metricstor extension offers to the other components of the distribution.
// The exporter and the promql extension find the extension through host.GetExtensions() by the
// component ID in their `storage:` setting and type-assert it to Store.
//
// All methods are safe for concurrent use. Methods called before the extension has started or after
// it has shut down return ErrNotRunning (appenders return it from Append and Commit).
//
// Writes: an AppenderV2 buffers samples; Commit makes them visible to every querier created after
// it returns and durable against a crash of the process (the commit is written to the store's
// sample log, FORMAT.md). Append keeps the label set of a new series, as Prometheus's head does:
// callers must not reuse its memory afterwards (no labels.ScratchBuilder.Overwrite buffers).
// Append returns per-sample errors (ErrOutOfOrderSample, ErrTooOldSample,
// ErrDuplicateSampleForTimestamp, ...) from Prometheus's storage package; the rest of the batch is
// unaffected. Append with a SeriesRef the store returned and empty labels appends to that series
// without resolving labels (a ref names one label set while the store runs); when the store has
// dropped the series from memory since, it returns ErrUnknownSeriesRef and the caller appends again
// with the labels.
//
// Reads: Querier(mint, maxt) with inclusive millisecond bounds; series come back sorted by labels.
type Store interface {
	promstorage.AppendableV2
	promstorage.SampleAndChunkQueryable
	promstorage.ExemplarQueryable

	// MetricMetadata returns the metadata (type, unit, help) recorded per metric family name. When
	// metric is not empty only that family is returned. The result is never nil.
	MetricMetadata(ctx context.Context, metric string) (map[string][]metadata.Metadata, error)

	// Dir is the data directory (the `directory` setting). Prometheus's snapshot API writes
	// snapshots under Dir()/snapshots.
	Dir() string

	// Snapshot writes a consistent point-in-time copy of the store to dir, which must not exist or
	// be an empty directory. With withHead every commit acknowledged before the call is in the
	// copy and none is in part; commits wait while it is taken. Without it, the copy holds what
	// the store has written out (the open head chunks as of the last checkpoint), and commits go
	// on. The copy is a data directory: a Metricstor started with it as its `directory` answers as
	// this store did. The names follow Prometheus's tsdb.DB.
	Snapshot(dir string, withHead bool) error

	// HeadStats returns the cardinality statistics of the head, the series the store holds in
	// memory (those appended to within about an hour of the newest sample), as Prometheus's
	// /api/v1/status/tsdb reports them for its head block. statsByLabelName is the label whose
	// values SeriesCountByMetricName counts (__name__); each list holds the limit largest
	// entries, largest first. It walks every head series: call it on request, not per scrape.
	// After a clean restart the head holds only the series written since.
	HeadStats(statsByLabelName string, limit int) (*HeadStats, error)

	// Retention describes the retention settings as Prometheus's runtimeinfo storageRetention
	// does: "15d", "10GiB", "80%", "15d or 10GiB"; empty when nothing is ever dropped.
	Retention() string
}

// HeadStats is the head's statistics (see Store.HeadStats).
type HeadStats = tsdb.HeadStats

// Errors a Store returns besides Prometheus's storage sentinels (ErrOutOfOrderSample,
// ErrTooOldSample, ErrDuplicateSampleForTimestamp, ...).
var (
	// ErrNotRunning is returned by a Store whose extension has not started or has shut down.
	// It is retryable: the same data may be accepted once the store runs.
	ErrNotRunning = tsdb.ErrClosed
	// ErrInvalidSample wraps why a sample can never be stored (an empty label set, a label name
	// twice). It is permanent.
	ErrInvalidSample = tsdb.ErrInvalidSample
	// ErrUnavailable wraps why the store refuses writes for now (disk full, read-only or vanished
	// directory, I/O error). Nothing of the refused commit is stored. It is retryable: the same
	// data is accepted once the cause is gone, without a restart.
	ErrUnavailable = tsdb.ErrUnavailable
	// ErrLimitExceeded wraps which configured limit a series exceeds (labels per series, label name
	// or value length, active series). It is permanent for that series; the rest of the batch is
	// unaffected.
	ErrLimitExceeded = tsdb.ErrLimitExceeded
	// ErrUnknownSeriesRef is returned by Append given a SeriesRef and no labels when the store
	// no longer holds that series in memory. Nothing was appended; append again with the
	// labels. (With labels, a ref the store does not know is only ignored.)
	ErrUnknownSeriesRef = tsdb.ErrUnknownSeriesRef
)

// FloatRunIterator is implemented by the iterators of the series a Store's queriers return,
// for a reader that takes every sample (functions over ranges): NextFloats moves past a run of
// float samples at once, where they are stored decoded together, and returns their times and
// values, valid until the iterator moves again (never an empty run). Where it cannot (another
// encoding, nothing left), it returns ok false without moving, and Next goes on from there.
// Iterators of a Select that thins samples for a step grid (WithStepGrid) return ok false.
type FloatRunIterator interface {
	chunkenc.Iterator
	NextFloats() (ts []int64, vs []float64, ok bool)
}

// StepGrid is where a range query evaluates its instant-vector selectors (milliseconds: the
// first step, the last, the step, and the lookback delta). A Select made with a context that
// carries one (WithStepGrid) may leave out, for a selector whose hints say exactly that grid (no
// range, that step, from Start-Lookback+1 to End: no offset, no @, no subquery), the samples
// that no step reads, since each step reads only the newest sample at or before it. The answer
// is the same; what the engine steps over is not read.
type StepGrid = tsdb.StepGrid

// WithStepGrid returns ctx carrying g for the Selects made with it. The caller promises that
// every selector of the query that gets the hints of g is evaluated at g's steps only.
func WithStepGrid(ctx context.Context, g StepGrid) context.Context {
	return tsdb.WithStepGrid(ctx, g)
}

// StepGridFrom returns the grid ctx carries (WithStepGrid), if any.
func StepGridFrom(ctx context.Context) (StepGrid, bool) {
	return tsdb.StepGridFrom(ctx)
}
