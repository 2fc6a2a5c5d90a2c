package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.uber.org/zap"

	mstorage "github.com/metricstor/metricstor/storage"
	"go.uber.org/zap/exp/zapslog"
)

// promqlExtension serves the Prometheus HTTP API over the store of the storage extension.
type promqlExtension struct {
	cfg      *Config            // never changes after construction
	settings extension.Settings // never changes after construction

	// ready is true from the collector's Ready (every pipeline started) to its NotReady or
	// Shutdown. Until then the API answers 503, as Prometheus's does until its storage is open,
	// so that /-/ready tells a client that writes are accepted too: the receivers start after
	// the extensions, and a sender that took a 200 from /-/ready at Start had its first push
	// refused.
	ready atomic.Bool

	// Set by Start, read by Shutdown; the collector never calls them concurrently.
	server  *http.Server
	addr    net.Addr // the bound address (the real port when the endpoint says :0)
	api     *queryAPI
	serveWG sync.WaitGroup // the serve goroutine

	store       mstorage.Store // set by Start, read by the rules extension after it
	externalURL *url.URL       // set by Start, read by the rules extension after it

	rules atomic.Pointer[rulesRef] // what /api/v1/rules, /alerts, /alertmanagers serve; nil: nothing
}

var (
	_ extensioncapabilities.Dependent       = (*promqlExtension)(nil)
	_ extensioncapabilities.PipelineWatcher = (*promqlExtension)(nil)
)

func newExtension(cfg *Config, set extension.Settings) *promqlExtension {
	return &promqlExtension{cfg: cfg, settings: set}
}

// Dependencies makes the collector start the storage extension, and the authenticator named by
// `auth:` if any, before this one and stop them after. The API answers requests as soon as Start
// returns, and an authenticator may only be ready after its own Start: basicauth reads its
// htpasswd there and panics on a request before it.
func (e *promqlExtension) Dependencies() []component.ID {
	deps := []component.ID{e.cfg.Storage}
	if e.cfg.Auth.HasValue() {
		deps = append(deps, e.cfg.Auth.Get().Config.AuthenticatorID)
	}
	return deps
}

// Start finds the store, binds the listener (so a busy port fails here) and serves the API.
func (e *promqlExtension) Start(ctx context.Context, host component.Host) error {
	store, err := findStore(host, e.cfg.Storage)
	if err != nil {
		return err
	}
	logger := e.settings.Logger
	api := newAPIHandler(store, apiSettings{
		cfg:     e.cfg,
		logger:  slog.New(zapslog.NewHandler(logger.Core(), zapslog.WithCaller(true))),
		version: e.settings.BuildInfo.Version,
		ready:   &e.ready,
		rules:   e.servedRules,
	})

	ln, err := e.cfg.ToListener(ctx)
	if err != nil {
		_ = api.engine.Close()
		return fmt.Errorf("promql: listen on %q: %w", e.cfg.NetAddr.Endpoint, err)
	}
	srv, err := e.cfg.ToServer(ctx, host.GetExtensions(), e.settings.TelemetrySettings, api.handler,
		// A remote read request is a snappy block with `Content-Encoding: snappy`, and
		// Prometheus's read handler decodes the snappy itself: confighttp must pass the body on
		// as it came (it would otherwise decode it once already, and the handler fail on it). No
		// other endpoint takes a snappy body.
		confighttp.WithDecoder("snappy", func(body io.ReadCloser) (io.ReadCloser, error) { return body, nil }))
	if err != nil {
		_ = ln.Close()
		_ = api.engine.Close()
		return fmt.Errorf("promql: create http server: %w", err)
	}
	extURL, err := externalURL(ln.Addr(), e.cfg.TLS.HasValue())
	if err != nil {
		_ = ln.Close()
		_ = api.engine.Close()
		return err
	}
	e.server, e.addr, e.api = srv, ln.Addr(), api
	e.store, e.externalURL = store, extURL

	e.serveWG.Add(1)
	go func() {
		defer e.serveWG.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	logger.Info("Prometheus HTTP API listening",
		zap.String("endpoint", ln.Addr().String()),
		zap.String("storage", e.cfg.Storage.String()))
	return nil
}

// Ready opens the API: the collector calls it once every pipeline has started.
func (e *promqlExtension) Ready() error {
	e.ready.Store(true)
	return nil
}

// NotReady closes the API again (503) while the collector shuts its pipelines down.
func (e *promqlExtension) NotReady() error {
	e.ready.Store(false)
	return nil
}

// Shutdown stops accepting requests, lets running ones finish until ctx is done, and closes the
// engine. It is safe to call without a prior Start.
func (e *promqlExtension) Shutdown(ctx context.Context) error {
	e.ready.Store(false)
	var err error
	if e.server != nil {
		if err = e.server.Shutdown(ctx); err != nil {
			err = errors.Join(err, e.server.Close())
		}
		e.serveWG.Wait()
	}
	if e.api != nil {
		err = errors.Join(err, e.api.engine.Close())
	}
	return err
}

// findStore looks the storage extension up by id and checks that it offers a Store.
func findStore(host component.Host, id component.ID) (mstorage.Store, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("promql: storage extension %q not found", id)
	}
	store, ok := ext.(mstorage.Store)
	if !ok {
		return nil, fmt.Errorf("promql: extension %q is not a metricstor storage extension (it is a %T)", id, ext)
	}
	return store, nil
}
