package storage

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
)

// Store is what the metricstor extension offers to the other components of the distribution.
// The exporter and the promql extension find the extension through host.GetExtensions() by the
// component ID in their `storage:` setting and type-assert it to Store.
//
// All methods are safe for concurrent use. Methods called before the extension has started or after
// it has shut down return ErrNotRunning (appenders return it from Append and Commit).
//
// Writes: an AppenderV2 buffers samples; Commit makes them visible to every querier created after
// it returns and durable against a crash of the process (the commit is synced to Pebble's WAL).
// Append returns per-sample errors (ErrOutOfOrderSample, ErrTooOldSample,
// ErrDuplicateSampleForTimestamp, ...) from Prometheus's storage package; the rest of the batch is
// unaffected.
//
// Reads: Querier(mint, maxt) with inclusive millisecond bounds; series come back sorted by labels.
type Store interface {
	promstorage.AppendableV2
	promstorage.SampleAndChunkQueryable
	promstorage.ExemplarQueryable

	// MetricMetadata returns the metadata (type, unit, help) recorded per metric family name. When
	// metric is not empty only that family is returned. The result is never nil.
	MetricMetadata(ctx context.Context, metric string) (map[string][]metadata.Metadata, error)
}

// ErrNotRunning is returned by a Store whose extension has not started or has shut down.
var ErrNotRunning = errors.New("metricstor storage is not running")
