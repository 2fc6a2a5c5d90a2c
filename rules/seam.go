package rules // import "github.com/metricstor/metricstor/rules"

import (
	"net/url"

	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	mstorage "github.com/metricstor/metricstor/storage"
)

// The seam between this extension and the promql extension, declared here once, as the store's
// is declared in storage/: this package imports nothing of the promql extension (queryext), which
// implements QueryAPI and serves State. The rules extension depends on the promql extension, so
// it starts after it and stops before it.

// QueryAPI is what the promql extension offers to the rules extension. The rules extension finds
// it through host.GetExtensions() by the ID in its `promql:` setting and type-asserts it.
type QueryAPI interface {
	// Engine is the engine of the API, with its configured limits (timeout, max_samples,
	// lookback_delta, max_concurrency: rule queries wait for a slot like API queries), as
	// Prometheus evaluates rules on the engine of its API. Nil before the extension started.
	Engine() promql.QueryEngine
	// Store is the metricstor store the API reads: rules read it through its Queryable and write
	// through its appender, the exporter's. Nil before the extension started.
	Store() mstorage.Store
	// ExternalURL is where the API is reachable (http(s)://host:port of the listener, the
	// machine's host name when it binds every address), the base of alerts' generatorURL.
	// Nil before the extension started.
	ExternalURL() *url.URL
	// ServeRules makes /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers serve s from now
	// on; nil makes them serve empty lists again.
	ServeRules(s State)
}

// State is what the API serves of the rules extension, with Prometheus's own retriever
// interfaces of web/api/v1: rule groups and alerting rules (/api/v1/rules, /api/v1/alerts) and
// Alertmanagers (/api/v1/alertmanagers). Safe for concurrent use.
type State interface {
	v1.RulesRetriever
	v1.AlertmanagerRetriever
}
