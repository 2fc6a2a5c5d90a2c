package scrapereceiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/scrape"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"go.uber.org/zap/exp/zapslog"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// scrapeReceiver runs Prometheus's discovery and scrape managers; every scrape is appended
// through appendable into the next consumer.
type scrapeReceiver struct {
	cfg      *Config
	settings receiver.Settings
	app      *appendable

	// Set by Start, read by Shutdown; the collector never calls them concurrently.
	cancel    context.CancelFunc
	discovery *discovery.Manager
	scrape    *scrape.Manager
	wg        sync.WaitGroup
}

func newScrapeReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) (*scrapeReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "http",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus receiver: create obsreport: %w", err)
	}
	return &scrapeReceiver{
		cfg:      cfg,
		settings: set,
		app:      &appendable{next: next, obsrecv: obsrecv, logger: set.Logger},
	}, nil
}

// Start applies the configuration to new discovery and scrape managers and runs them. Their
// own metrics (prometheus_sd_*, prometheus_target_*) go to a registry of the receiver's that
// nothing exports: the collector's telemetry is the receiver's obsreport (accepted and refused
// points, per scrape).
func (r *scrapeReceiver) Start(_ context.Context, host component.Host) error {
	if r.cfg.DirectWrite {
		w, id, why := passthrough.FindSeriesWriter(host, r.settings.ID)
		switch {
		case w != nil:
			r.settings.Logger.Info("Scraped series go straight to the metricstor exporter of the pipeline, without pipeline data: the pipeline has no processor and no other exporter",
				zap.String("storage", id.String()))
			r.app.writer = w
		case why != "":
			r.settings.Logger.Info("Scraped series go through the pipeline as pipeline data", zap.String("reason", why))
		}
	}
	pc := r.cfg.PrometheusConfig()
	if pc == nil {
		return errors.New("prometheus receiver: no Prometheus configuration")
	}
	scs, err := pc.GetScrapeConfigs()
	if err != nil {
		return fmt.Errorf("prometheus receiver: scrape_configs: %w", err)
	}
	logger := slog.New(zapslog.NewHandler(r.settings.Logger.Core(), zapslog.WithCaller(true)))
	reg := prometheus.NewRegistry()
	sdMetrics, err := discovery.CreateAndRegisterSDMetrics(reg)
	if err != nil {
		return fmt.Errorf("prometheus receiver: discovery metrics: %w", err)
	}
	// The managers live as long as the receiver, not as long as Start's context.
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.discovery = discovery.NewManager(ctx, logger.With("component", "discovery manager"), reg, sdMetrics, discovery.Name("scrape"))
	if r.discovery == nil {
		cancel()
		return errors.New("prometheus receiver: cannot create the discovery manager")
	}
	r.scrape, err = scrape.NewManager(&scrape.Options{
		// Metadata (type, help, unit, family) is passed with every sample: the passthrough
		// encoding carries it to the store, whose /api/v1/metadata answers with it.
		AppendMetadata: true,
		// Targets are discovered right away rather than after the first 5 s reload interval.
		DiscoveryReloadOnStartup: true,
	}, logger.With("component", "scrape manager"), nil, nil, r.app, reg)
	if err != nil {
		cancel()
		return fmt.Errorf("prometheus receiver: create scrape manager: %w", err)
	}
	if err := r.scrape.ApplyConfig(pc); err != nil {
		cancel()
		return fmt.Errorf("prometheus receiver: apply scrape configuration: %w", err)
	}
	sd := make(map[string]discovery.Configs, len(scs))
	for _, sc := range scs {
		sd[sc.JobName] = sc.ServiceDiscoveryConfigs
	}
	if err := r.discovery.ApplyConfig(sd); err != nil {
		cancel()
		return fmt.Errorf("prometheus receiver: apply service discovery configuration: %w", err)
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := r.discovery.Run(); err != nil && ctx.Err() == nil {
			r.settings.Logger.Error("discovery manager stopped", zap.Error(err))
		}
	}()
	go func() {
		defer r.wg.Done()
		if err := r.scrape.Run(r.discovery.SyncCh()); err != nil {
			r.settings.Logger.Error("scrape manager stopped", zap.Error(err))
		}
	}()
	return nil
}

// Shutdown stops scraping. As in Prometheus, no end-of-run staleness markers are written on
// shutdown (the server presumes it restarts where it was); a target that disappears while
// running gets them. Appends after Shutdown are refused, not sent to a stopped pipeline.
func (r *scrapeReceiver) Shutdown(context.Context) error {
	if r.scrape != nil {
		r.scrape.Stop()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.app.close()
	return nil
}
