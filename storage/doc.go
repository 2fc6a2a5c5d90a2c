// Package storage is the `metricstor` extension: Metricstor's time-series database on Pebble,
// the one place data lives. Other components find it by ID through host.GetExtensions() and use
// it through the Store interface: Prometheus's AppendableV2 for writes, Queryable for reads.
// The database itself lives in internal/tsdb; its key layout is described in FORMAT.md.
package storage // import "github.com/metricstor/metricstor/storage"
