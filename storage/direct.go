package storage

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// The store is where the remote_write receiver finds the metricstor exporter that may take its
// series without pipeline data (passthrough.Routes): both find the store by ID, and the
// collector hands an extension its configuration before it starts any pipeline. The decision is
// the configuration's alone; the store only keeps it.

var (
	_ extensioncapabilities.ConfigSnapshotWatcher = (*storageExtension)(nil)
	_ passthrough.Router                          = (*storageExtension)(nil)
	_ passthrough.Registry                        = (*storageExtension)(nil)
)

// NotifyConfigSnapshot reads the pipelines of the effective configuration. A configuration it
// cannot read leaves every receiver on its pipeline, which is always right.
func (e *storageExtension) NotifyConfigSnapshot(_ context.Context, snapshot extensioncapabilities.ConfigSnapshot) error {
	if err := e.routes.SetConfig(snapshot.Effective()); err != nil {
		e.set.Logger.Warn("Remote write goes through its pipeline: the configuration could not be read", zap.Error(err))
	}
	return nil
}

// SeriesWriter implements passthrough.Router.
func (e *storageExtension) SeriesWriter(receiver component.ID) (passthrough.SeriesWriter, string) {
	return e.routes.SeriesWriter(receiver)
}

// RegisterSeriesWriter implements passthrough.Registry.
func (e *storageExtension) RegisterSeriesWriter(exporter component.ID, w passthrough.SeriesWriter) {
	e.routes.Register(exporter, w)
}
