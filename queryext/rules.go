package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"go.uber.org/zap"

	mstorage "github.com/metricstor/metricstor/storage"
)

// The seam between the promql extension and the rules extension (package rules). It is declared
// here, once: the rules extension imports it, the promql extension imports nothing of the rules
// extension. The rules extension depends on the promql extension (so it starts after it and stops
// before it), evaluates its rules on the engine and store offered here, and while it runs hands its
// state to ServeRules so that /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers show it.

// QueryService is what the promql extension offers to the rules extension. The collector finds the
// promql extension through host.GetExtensions() by the ID in the rules extension's `promql:`
// setting and type-asserts it to QueryService.
type QueryService interface {
	// Engine is the engine of the API, with the configured limits (timeout, max_samples,
	// max_concurrency: rule queries wait for a slot like API queries). Nil before Start.
	Engine() promql.QueryEngine
	// Store is the store the API reads from. Nil before Start.
	Store() mstorage.Store
	// ExternalURL is where the API is reachable, the base of alerts' generatorURL: http(s) and
	// the bound address, with the host name of the machine when the endpoint binds every address.
	// Nil before Start.
	ExternalURL() *url.URL
	// ServeRules makes the API serve the state of src; nil makes it serve nothing again.
	ServeRules(src RulesSource)
}

// RulesSource is the state of the rules extension that the API serves: rule groups and alerting
// rules for /api/v1/rules and /api/v1/alerts, Alertmanagers for /api/v1/alertmanagers.
type RulesSource interface {
	v1.RulesRetriever
	v1.AlertmanagerRetriever
}

var _ QueryService = (*promqlExtension)(nil)

// rulesRef holds the served RulesSource (an interface cannot be stored in an atomic.Pointer).
type rulesRef struct{ src RulesSource }

func (e *promqlExtension) Engine() promql.QueryEngine {
	if e.api == nil {
		return nil
	}
	return e.api.engine
}

func (e *promqlExtension) Store() mstorage.Store { return e.store }

func (e *promqlExtension) ExternalURL() *url.URL { return e.externalURL }

func (e *promqlExtension) ServeRules(src RulesSource) {
	if src == nil {
		e.rules.Store(nil)
		return
	}
	e.rules.Store(&rulesRef{src})
}

// servedRules is the RulesSource the API serves now: the registered one or an empty one.
func (e *promqlExtension) servedRules() RulesSource {
	if r := e.rules.Load(); r != nil {
		return r.src
	}
	return noRules{}
}

// externalURL is http(s)://host:port of the bound listener. A wildcard address (0.0.0.0, ::) is
// replaced by the machine's host name, as Prometheus's default --web.external-url does.
func externalURL(addr net.Addr, tls bool) (*url.URL, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return nil, errors.New("promql: listener is not TCP")
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(tcp.Port))}, nil
}

// NewSlogLogger adapts the collector's zap logger to the *slog.Logger Prometheus's packages want,
// as the promql extension does for its own (the rules extension logs through it too).
func NewSlogLogger(logger *zap.Logger) *slog.Logger { return newSlogLogger(logger) }
