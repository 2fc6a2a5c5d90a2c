// Package metadatatest makes a component's metadata.yaml the single source of what the component
// declares: its type, its stability and its own telemetry (metric names, kinds, descriptions, units,
// attributes and their values).
//
// mdatagen v0.165 is not served by the module proxy available to this project, so the Go that
// mdatagen would generate (internal/metadata, the instrument declarations) is written by hand. Each
// component's metadata_test.go reads its metadata.yaml with this package and fails when the code
// says something else, so the two cannot drift apart silently. The file format is mdatagen's: the
// fields read here mean what they mean to mdatagen.
package metadatatest // import "github.com/metricstor/metricstor/internal/metadatatest"

import (
	"context"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.yaml.in/yaml/v3"
)

// Metadata is the part of a metadata.yaml this package checks.
type Metadata struct {
	Type   string `yaml:"type"`
	Status struct {
		Class string `yaml:"class"`
		// Stability maps a level (alpha, development, ...) to the signals at it ("extension" for
		// an extension).
		Stability map[string][]string `yaml:"stability"`
	} `yaml:"status"`
	// Attributes are declared once and referred to by id from the metrics; name_override gives the
	// attribute's name where two attributes share one (e.g. two different `reason`s).
	Attributes map[string]Attribute `yaml:"attributes"`
	Telemetry  struct {
		Metrics map[string]Metric `yaml:"metrics"`
	} `yaml:"telemetry"`
}

// Attribute is one entry of metadata.yaml's attributes.
type Attribute struct {
	Description  string   `yaml:"description"`
	NameOverride string   `yaml:"name_override"`
	Type         string   `yaml:"type"`
	Enum         []string `yaml:"enum"`
}

// Metric is one entry of metadata.yaml's telemetry.metrics.
type Metric struct {
	Enabled     bool     `yaml:"enabled"`
	Description string   `yaml:"description"`
	Unit        string   `yaml:"unit"`
	Attributes  []string `yaml:"attributes"`
	Sum         *struct {
		ValueType string `yaml:"value_type"`
		Monotonic bool   `yaml:"monotonic"`
	} `yaml:"sum"`
	Gauge *struct {
		ValueType string `yaml:"value_type"`
	} `yaml:"gauge"`
	Histogram *struct {
		ValueType string `yaml:"value_type"`
	} `yaml:"histogram"`
}

// Read parses the metadata.yaml at path (a component's test passes "metadata.yaml") and checks
// that it is complete: every metric has a description, a unit, one kind, and declared attributes.
func Read(t testing.TB, path string) Metadata {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var md Metadata
	require.NoError(t, yaml.Unmarshal(b, &md), path)
	require.NotEmpty(t, md.Type, "%s: type", path)
	for name, m := range md.Telemetry.Metrics {
		require.NotEmpty(t, m.Description, "%s: %s has no description", path, name)
		require.NotEmpty(t, m.Unit, "%s: %s has no unit", path, name)
		kinds := 0
		for _, set := range []bool{m.Sum != nil, m.Gauge != nil, m.Histogram != nil} {
			if set {
				kinds++
			}
		}
		require.Equal(t, 1, kinds, "%s: %s must be exactly one of sum, gauge, histogram", path, name)
		for _, a := range m.Attributes {
			require.Contains(t, md.Attributes, a, "%s: %s refers to undeclared attribute %q", path, name, a)
		}
	}
	return md
}

// AttributeName is the name the attribute with this id has on the data points.
func (md Metadata) AttributeName(id string) string {
	if a := md.Attributes[id]; a.NameOverride != "" {
		return a.NameOverride
	}
	return id
}

// Enum is the declared values of the attribute with this id, sorted.
func (md Metadata) Enum(t testing.TB, id string) []string {
	t.Helper()
	a, ok := md.Attributes[id]
	require.True(t, ok, "attribute %q is not declared in metadata.yaml", id)
	require.NotEmpty(t, a.Enum, "attribute %q has no enum in metadata.yaml", id)
	out := slices.Clone(a.Enum)
	sort.Strings(out)
	return out
}

// CheckEnum fails unless the values the code uses for the attribute with this id are exactly the
// ones metadata.yaml declares.
func (md Metadata) CheckEnum(t testing.TB, id string, codeValues []string) {
	t.Helper()
	got := slices.Clone(codeValues)
	sort.Strings(got)
	assert.Equal(t, md.Enum(t, id), slices.Compact(got), "values of attribute %q: metadata.yaml (expected) vs code (actual)", id)
}

// CheckFactory fails unless the factory's type and its stability per signal are the declared ones.
func (md Metadata) CheckFactory(t testing.TB, f component.Factory) {
	t.Helper()
	assert.Equal(t, md.Type, f.Type().String(), "type")
	declared := map[string]string{} // signal -> level
	for level, signals := range md.Status.Stability {
		for _, s := range signals {
			declared[s] = level
		}
	}
	type signalStability struct {
		signal string
		level  func() component.StabilityLevel
	}
	var have []signalStability
	if f, ok := f.(interface {
		Stability() component.StabilityLevel
	}); ok {
		have = append(have, signalStability{"extension", f.Stability})
	}
	if f, ok := f.(interface {
		MetricsStability() component.StabilityLevel
	}); ok {
		have = append(have, signalStability{"metrics", f.MetricsStability})
	}
	if f, ok := f.(interface {
		TracesStability() component.StabilityLevel
	}); ok {
		have = append(have, signalStability{"traces", f.TracesStability})
	}
	if f, ok := f.(interface {
		LogsStability() component.StabilityLevel
	}); ok {
		have = append(have, signalStability{"logs", f.LogsStability})
	}
	require.NotEmpty(t, have, "factory %T has no stability", f)
	for _, s := range have {
		want, ok := declared[s.signal]
		got := s.level()
		if !ok {
			assert.Equal(t, component.StabilityLevelUndefined, got, "signal %s is not in metadata.yaml's stability", s.signal)
			continue
		}
		assert.Equal(t, want, strings.ToLower(got.String()), "stability of %s", s.signal)
		delete(declared, s.signal)
	}
	assert.Empty(t, declared, "metadata.yaml declares a stability for signals the factory does not support")
}

// Telemetry is componenttest's telemetry with a meter provider that also records every instrument
// created through it, so the declarations can be compared before any value is recorded.
type Telemetry struct {
	*componenttest.Telemetry
	provider *recordingProvider
}

// NewTelemetry returns a Telemetry shut down at the end of the test.
func NewTelemetry(t testing.TB) *Telemetry {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { assert.NoError(t, tel.Shutdown(context.Background())) })
	set := tel.NewTelemetrySettings()
	return &Telemetry{Telemetry: tel, provider: &recordingProvider{MeterProvider: set.MeterProvider}}
}

// Settings are the TelemetrySettings to create the component with.
func (tt *Telemetry) Settings() component.TelemetrySettings {
	set := tt.NewTelemetrySettings()
	set.MeterProvider = tt.provider
	return set
}

// CheckInstruments fails unless the instruments created so far under scope are exactly the metrics
// of metadata.yaml's telemetry, each with the declared kind, description and unit, and unless every
// data point collected now has only declared attributes with declared values.
func (tt *Telemetry) CheckInstruments(t testing.TB, md Metadata, scope string) {
	t.Helper()
	created := map[string]instrument{}
	for _, in := range tt.provider.created() {
		if in.scope != scope {
			continue
		}
		_, dup := created[in.name]
		assert.False(t, dup, "instrument %s created twice", in.name)
		created[in.name] = in
	}
	for name, m := range md.Telemetry.Metrics {
		in, ok := created[name]
		if !assert.True(t, ok, "metadata.yaml declares %s, the code does not create it", name) {
			continue
		}
		assert.Equal(t, m.Description, in.description, "description of %s: metadata.yaml (expected) vs code (actual)", name)
		assert.Equal(t, m.Unit, in.unit, "unit of %s", name)
		assert.Equal(t, m.kind(), in.kind, "kind of %s", name)
		assert.True(t, m.Enabled, "%s is created but not enabled in metadata.yaml", name)
	}
	for name := range created {
		_, ok := md.Telemetry.Metrics[name]
		assert.True(t, ok, "the code creates %s, metadata.yaml does not declare it", name)
	}

	for name, values := range tt.Observed(t, scope) {
		m, ok := md.Telemetry.Metrics[name]
		if !ok {
			continue // reported above
		}
		byName := map[string]string{} // attribute name -> id
		for _, id := range m.Attributes {
			byName[md.AttributeName(id)] = id
		}
		for key, vs := range values {
			id, ok := byName[key]
			if !assert.True(t, ok, "%s has attribute %q that metadata.yaml does not declare for it", name, key) {
				continue
			}
			if enum := md.Attributes[id].Enum; len(enum) > 0 {
				for _, v := range vs {
					assert.Contains(t, enum, v, "%s: value of attribute %q (%s) not in metadata.yaml's enum", name, key, id)
				}
			}
		}
	}
}

// Observed collects the scope's metrics now and returns, per metric and attribute name, the sorted
// distinct values seen on data points.
func (tt *Telemetry) Observed(t testing.TB, scope string) map[string]map[string][]string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tt.Reader.Collect(context.Background(), &rm))
	out := map[string]map[string][]string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != scope {
			continue
		}
		for _, m := range sm.Metrics {
			values := map[string][]string{}
			add := func(set attribute.Set) {
				for _, kv := range set.ToSlice() {
					k := string(kv.Key)
					if v := kv.Value.Emit(); !slices.Contains(values[k], v) {
						values[k] = append(values[k], v)
					}
				}
			}
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					add(p.Attributes)
				}
			default:
				t.Fatalf("%s: data of type %T not handled", m.Name, m.Data)
			}
			for k := range values {
				sort.Strings(values[k])
			}
			out[m.Name] = values
		}
	}
	return out
}

// kind is the instrument kind metadata.yaml declares, in the words of instrument.kind.
func (m Metric) kind() string {
	switch {
	case m.Sum != nil && m.Sum.Monotonic:
		return m.Sum.ValueType + " counter"
	case m.Sum != nil:
		return m.Sum.ValueType + " updowncounter"
	case m.Gauge != nil:
		return m.Gauge.ValueType + " gauge"
	case m.Histogram != nil:
		return m.Histogram.ValueType + " histogram"
	}
	return ""
}

// instrument is what the code declared when creating one instrument. kind is "<int|double>
// <counter|updowncounter|gauge|histogram>": synchronous and observable instruments of one kind map
// to the same metadata.yaml entry, as in mdatagen (which marks the observable ones `async: true`).
type instrument struct {
	scope, name, kind, description, unit string
}

type recordingProvider struct {
	metric.MeterProvider
	mu          sync.Mutex
	instruments []instrument
}

func (p *recordingProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return &recordingMeter{Meter: p.MeterProvider.Meter(name, opts...), scope: name, p: p}
}

func (p *recordingProvider) record(scope, name, kind, desc, unit string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.instruments = append(p.instruments, instrument{scope: scope, name: name, kind: kind, description: desc, unit: unit})
}

func (p *recordingProvider) created() []instrument {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.instruments)
}

// recordingMeter records every instrument creation and delegates it to the SDK's meter. Methods
// not overridden here (RegisterCallback) are the SDK's.
type recordingMeter struct {
	metric.Meter
	scope string
	p     *recordingProvider
}

func (m *recordingMeter) Int64Counter(name string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c := metric.NewInt64CounterConfig(opts...)
	m.p.record(m.scope, name, "int counter", c.Description(), c.Unit())
	return m.Meter.Int64Counter(name, opts...)
}

func (m *recordingMeter) Int64UpDownCounter(name string, opts ...metric.Int64UpDownCounterOption) (metric.Int64UpDownCounter, error) {
	c := metric.NewInt64UpDownCounterConfig(opts...)
	m.p.record(m.scope, name, "int updowncounter", c.Description(), c.Unit())
	return m.Meter.Int64UpDownCounter(name, opts...)
}

func (m *recordingMeter) Int64Histogram(name string, opts ...metric.Int64HistogramOption) (metric.Int64Histogram, error) {
	c := metric.NewInt64HistogramConfig(opts...)
	m.p.record(m.scope, name, "int histogram", c.Description(), c.Unit())
	return m.Meter.Int64Histogram(name, opts...)
}

func (m *recordingMeter) Int64Gauge(name string, opts ...metric.Int64GaugeOption) (metric.Int64Gauge, error) {
	c := metric.NewInt64GaugeConfig(opts...)
	m.p.record(m.scope, name, "int gauge", c.Description(), c.Unit())
	return m.Meter.Int64Gauge(name, opts...)
}

func (m *recordingMeter) Int64ObservableCounter(name string, opts ...metric.Int64ObservableCounterOption) (metric.Int64ObservableCounter, error) {
	c := metric.NewInt64ObservableCounterConfig(opts...)
	m.p.record(m.scope, name, "int counter", c.Description(), c.Unit())
	return m.Meter.Int64ObservableCounter(name, opts...)
}

func (m *recordingMeter) Int64ObservableUpDownCounter(name string, opts ...metric.Int64ObservableUpDownCounterOption) (metric.Int64ObservableUpDownCounter, error) {
	c := metric.NewInt64ObservableUpDownCounterConfig(opts...)
	m.p.record(m.scope, name, "int updowncounter", c.Description(), c.Unit())
	return m.Meter.Int64ObservableUpDownCounter(name, opts...)
}

func (m *recordingMeter) Int64ObservableGauge(name string, opts ...metric.Int64ObservableGaugeOption) (metric.Int64ObservableGauge, error) {
	c := metric.NewInt64ObservableGaugeConfig(opts...)
	m.p.record(m.scope, name, "int gauge", c.Description(), c.Unit())
	return m.Meter.Int64ObservableGauge(name, opts...)
}

func (m *recordingMeter) Float64Counter(name string, opts ...metric.Float64CounterOption) (metric.Float64Counter, error) {
	c := metric.NewFloat64CounterConfig(opts...)
	m.p.record(m.scope, name, "double counter", c.Description(), c.Unit())
	return m.Meter.Float64Counter(name, opts...)
}

func (m *recordingMeter) Float64UpDownCounter(name string, opts ...metric.Float64UpDownCounterOption) (metric.Float64UpDownCounter, error) {
	c := metric.NewFloat64UpDownCounterConfig(opts...)
	m.p.record(m.scope, name, "double updowncounter", c.Description(), c.Unit())
	return m.Meter.Float64UpDownCounter(name, opts...)
}

func (m *recordingMeter) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	c := metric.NewFloat64HistogramConfig(opts...)
	m.p.record(m.scope, name, "double histogram", c.Description(), c.Unit())
	return m.Meter.Float64Histogram(name, opts...)
}

func (m *recordingMeter) Float64Gauge(name string, opts ...metric.Float64GaugeOption) (metric.Float64Gauge, error) {
	c := metric.NewFloat64GaugeConfig(opts...)
	m.p.record(m.scope, name, "double gauge", c.Description(), c.Unit())
	return m.Meter.Float64Gauge(name, opts...)
}

func (m *recordingMeter) Float64ObservableCounter(name string, opts ...metric.Float64ObservableCounterOption) (metric.Float64ObservableCounter, error) {
	c := metric.NewFloat64ObservableCounterConfig(opts...)
	m.p.record(m.scope, name, "double counter", c.Description(), c.Unit())
	return m.Meter.Float64ObservableCounter(name, opts...)
}

func (m *recordingMeter) Float64ObservableUpDownCounter(name string, opts ...metric.Float64ObservableUpDownCounterOption) (metric.Float64ObservableUpDownCounter, error) {
	c := metric.NewFloat64ObservableUpDownCounterConfig(opts...)
	m.p.record(m.scope, name, "double updowncounter", c.Description(), c.Unit())
	return m.Meter.Float64ObservableUpDownCounter(name, opts...)
}

func (m *recordingMeter) Float64ObservableGauge(name string, opts ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	c := metric.NewFloat64ObservableGaugeConfig(opts...)
	m.p.record(m.scope, name, "double gauge", c.Description(), c.Unit())
	return m.Meter.Float64ObservableGauge(name, opts...)
}
