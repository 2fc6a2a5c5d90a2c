package rules // import "github.com/metricstor/metricstor/rules"

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/metricstor/metricstor/rules/internal/metadata"
)

// bridged is one metric family of Prometheus's rules and notifier packages, observed from their
// registry and reported through the collector's telemetry under our name, with the family's
// labels (rule_group, alertmanager) as attributes.
type bridged struct {
	prom, name, desc, unit string
	gauge                  bool
}

var bridgedFamilies = []bridged{
	{prom: "prometheus_rule_evaluations_total", name: "metricstor_rules_evaluations",
		desc: "Rule evaluations, by rule group.", unit: "{evaluation}"},
	{prom: "prometheus_rule_evaluation_failures_total", name: "metricstor_rules_evaluation_failures",
		desc: "Rule evaluations that failed (query error or limit, template error, store refusal), by rule group; the error is in /api/v1/rules (lastError).", unit: "{evaluation}"},
	{prom: "prometheus_rule_group_iterations_missed_total", name: "metricstor_rules_group_iterations_missed",
		desc: "Rule group evaluations skipped because the previous one took longer than the interval, by rule group.", unit: "{iteration}"},
	{prom: "prometheus_notifications_sent_total", name: "metricstor_rules_notifications_sent",
		desc: "Alerts sent, by Alertmanager.", unit: "{alert}"},
	{prom: "prometheus_notifications_errors_total", name: "metricstor_rules_notifications_errors",
		desc: "Alerts whose sending failed, by Alertmanager.", unit: "{alert}"},
	{prom: "prometheus_notifications_dropped_total", name: "metricstor_rules_notifications_dropped",
		desc: "Alerts dropped (sending failed or the queue was full), by Alertmanager.", unit: "{alert}"},
	{prom: "prometheus_notifications_queue_length", name: "metricstor_rules_notifications_queue_length",
		desc: "Alerts waiting to be sent, by Alertmanager.", unit: "{alert}", gauge: true},
}

// telemetry is the extension's own telemetry: the reload counter and the bridged families.
type telemetry struct {
	reloads      metric.Int64Counter
	registration metric.Registration
}

func newTelemetry(set component.TelemetrySettings, reg prometheus.Gatherer) (*telemetry, error) {
	m := set.MeterProvider.Meter(metadata.ScopeName)
	reloads, err := m.Int64Counter("metricstor_rules_reloads",
		metric.WithDescription("Loads of the rule files after a change was seen, by result (success, failure: the previous rules keep running)."),
		metric.WithUnit("{reload}"))
	if err != nil {
		return nil, err
	}
	instruments := make([]metric.Observable, len(bridgedFamilies))
	for i, b := range bridgedFamilies {
		if b.gauge {
			instruments[i], err = m.Int64ObservableGauge(b.name, metric.WithDescription(b.desc), metric.WithUnit(b.unit))
		} else {
			instruments[i], err = m.Int64ObservableCounter(b.name, metric.WithDescription(b.desc), metric.WithUnit(b.unit))
		}
		if err != nil {
			return nil, err
		}
	}
	registration, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		families, err := reg.Gather()
		if err != nil {
			return err
		}
		byName := make(map[string]int, len(bridgedFamilies))
		for i, b := range bridgedFamilies {
			byName[b.prom] = i
		}
		for _, f := range families {
			i, ok := byName[f.GetName()]
			if !ok {
				continue
			}
			for _, s := range f.GetMetric() {
				attrs := make([]attribute.KeyValue, 0, len(s.GetLabel()))
				for _, l := range s.GetLabel() {
					attrs = append(attrs, attribute.String(l.GetName(), l.GetValue()))
				}
				var v float64
				switch {
				case s.Counter != nil:
					v = s.GetCounter().GetValue()
				case s.Gauge != nil:
					v = s.GetGauge().GetValue()
				default:
					continue
				}
				opt := metric.WithAttributes(attrs...)
				switch inst := instruments[i].(type) {
				case metric.Int64ObservableCounter:
					o.ObserveInt64(inst, int64(v), opt)
				case metric.Int64ObservableGauge:
					o.ObserveInt64(inst, int64(v), opt)
				}
			}
		}
		return nil
	}, instruments...)
	if err != nil {
		return nil, err
	}
	return &telemetry{reloads: reloads, registration: registration}, nil
}

func (t *telemetry) reloaded(ok bool) {
	result := "success"
	if !ok {
		result = "failure"
	}
	t.reloads.Add(context.Background(), 1, metric.WithAttributes(attribute.String("result", result)))
}

func (t *telemetry) shutdown() error { return t.registration.Unregister() }
