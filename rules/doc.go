// Package rules implements the `rules` extension: Prometheus recording and alerting rule files
// evaluated by Prometheus's own rules package on the store of the metricstor storage extension,
// with alerts sent to Alertmanager by Prometheus's notifier package.
//
// The extension depends on the promql extension named by its `promql` setting
// (QueryAPI, declared in seam.go): rules are evaluated by that extension's engine over its store, recording
// rule results and ALERTS / ALERTS_FOR_STATE series are appended to that store, alerts carry a
// generatorURL on that extension's external URL, and the extension hands its state back to it
// (ServeRules) so that /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers show it.
package rules // import "github.com/metricstor/metricstor/rules"
