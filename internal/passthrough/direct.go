package passthrough

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/metadata"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pipeline"
)

// Direct writing. Converting a remote write request to pipeline data and back is the largest part
// of what a sample costs the collector (a data point, an attribute map and a boxed value per
// sample; about a third of the CPU of a steady load). When a receiver's data can only ever reach
// one metricstor exporter unchanged, that round trip has no observer, and the receiver hands its
// validated series to that exporter directly instead (SeriesWriter). "Only ever unchanged" is read
// from the collector's effective configuration (Routes): the receiver is in exactly one metrics
// pipeline, which has no processor and exactly one exporter, and that exporter writes synchronously
// (no sending queue, no retry). Any processor, a second exporter or pipeline, or a connector sends
// the data through the pipeline as pmetric data, as before: processors keep working on it. The
// series written are the same either way (the receiver's tests, the PromQL conformance run and the
// scrape comparison with Prometheus run both ways).

// Label is one label of a series.
type Label struct{ Name, Value string }

// Sample is a float sample (a stale marker is value.StaleNaN) with its start timestamp (0 when
// unknown). Timestamps are milliseconds.
type Sample struct {
	ST, T int64
	V     float64
}

// Histogram is a native histogram, integer (H) or float (FH), with its start timestamp.
type Histogram struct {
	ST, T int64
	H     *histogram.Histogram
	FH    *histogram.FloatHistogram
}

// Series is one valid series of a request, as the remote_write receiver has checked it: a
// non-empty __name__, valid UTF-8, no label name twice, timestamps in range, valid histograms.
// Its slices and strings belong to the request and are valid until WriteSeries returns; the
// writer copies what it keeps.
type Series struct {
	// Labels are sorted by name. A label with an empty value is no label (Prometheus drops it).
	Labels []Label
	// Name, Job and Instance are the values of the __name__, job and instance labels.
	Name, Job, Instance string
	// Metadata is what the sender declared (HasMetadata) for the metric family Family.
	Metadata    metadata.Metadata
	HasMetadata bool
	Family      string
	Samples     []Sample
	Histograms  []Histogram
	// Exemplars go with the last sample, or with the last histogram when there is no sample.
	Exemplars []exemplar.Exemplar
}

// SeriesWriter writes the series of one request to the store and commits them, as one
// ConsumeMetrics of their pipeline data would: the same series, the same errors
// (PartialWriteError for samples the store refused one by one, a retryable error when nothing
// was stored), the same telemetry of the exporter's own.
type SeriesWriter interface {
	WriteSeries(ctx context.Context, series []Series) error
}

// Router finds the SeriesWriter of a receiver. The metricstor storage extension is one: it reads
// the collector's configuration (Routes) and knows the exporters that write to it.
type Router interface {
	// SeriesWriter returns the writer that receives everything the receiver sends into its
	// pipeline, or nil and why the receiver must use the pipeline.
	SeriesWriter(receiver component.ID) (SeriesWriter, string)
}

// Routes decides which receivers may write directly, from the collector's effective
// configuration, and holds the SeriesWriters that exporters registered. It is safe for
// concurrent use.
type Routes struct {
	mu sync.Mutex
	// pipelines of the metrics signal, as the configuration gives them; nil until SetConfig.
	pipelines map[string]pipelineConf
	writers   map[component.ID]SeriesWriter
}

type pipelineConf struct {
	Receivers  []string `mapstructure:"receivers"`
	Processors []string `mapstructure:"processors"`
	Exporters  []string `mapstructure:"exporters"`
}

// SetConfig reads the pipelines of the collector's effective configuration (the whole of it:
// the collector hands it to extensions before it starts any pipeline).
func (r *Routes) SetConfig(conf *confmap.Conf) error {
	var cfg struct {
		Service struct {
			Pipelines map[string]pipelineConf `mapstructure:"pipelines"`
		} `mapstructure:"service"`
	}
	if err := conf.Unmarshal(&cfg, confmap.WithIgnoreUnused()); err != nil {
		return fmt.Errorf("read the pipelines of the configuration: %w", err)
	}
	metrics := map[string]pipelineConf{}
	for id, p := range cfg.Service.Pipelines {
		var pid pipeline.ID
		if err := pid.UnmarshalText([]byte(id)); err != nil || pid.Signal() != pipeline.SignalMetrics {
			continue
		}
		metrics[id] = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pipelines = metrics
	return nil
}

// Register makes w the writer of the exporter with that ID; nil removes it. An exporter
// registers only when it writes synchronously (no sending queue, no retry), as the pipeline
// would reach it.
func (r *Routes) Register(exporter component.ID, w SeriesWriter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w == nil {
		delete(r.writers, exporter)
		return
	}
	if r.writers == nil {
		r.writers = map[component.ID]SeriesWriter{}
	}
	r.writers[exporter] = w
}

// SeriesWriter implements Router.
func (r *Routes) SeriesWriter(receiver component.ID) (SeriesWriter, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pipelines == nil {
		return nil, "the collector's configuration is not known"
	}
	var in []string
	for id, p := range r.pipelines {
		if slices.Contains(p.Receivers, receiver.String()) {
			in = append(in, id)
		}
	}
	slices.Sort(in)
	if len(in) != 1 {
		return nil, fmt.Sprintf("it is in %d metrics pipelines (%s), not one", len(in), strings.Join(in, ", "))
	}
	p := r.pipelines[in[0]]
	if len(p.Processors) > 0 {
		return nil, fmt.Sprintf("pipeline %s has processors (%s)", in[0], strings.Join(p.Processors, ", "))
	}
	if len(p.Exporters) != 1 {
		return nil, fmt.Sprintf("pipeline %s has %d exporters, not one", in[0], len(p.Exporters))
	}
	var exp component.ID
	if err := exp.UnmarshalText([]byte(p.Exporters[0])); err != nil {
		return nil, fmt.Sprintf("pipeline %s: exporter %q: %v", in[0], p.Exporters[0], err)
	}
	w, ok := r.writers[exp]
	if !ok {
		return nil, fmt.Sprintf("exporter %s of pipeline %s is not a metricstor exporter writing to this store without sending queue and retries", exp, in[0])
	}
	return w, ""
}

// Registry is where an exporter registers its SeriesWriter: the metricstor storage extension it
// writes to.
type Registry interface {
	RegisterSeriesWriter(exporter component.ID, w SeriesWriter)
}

// FindSeriesWriter asks the Routers among the host's extensions for the writer of a receiver:
// the writer and the extension that routes to it, or nil and why the receiver must use its
// pipeline ("" when no extension routes at all, as outside a Metricstor configuration).
func FindSeriesWriter(host component.Host, receiver component.ID) (w SeriesWriter, router component.ID, why string) {
	ids := make([]component.ID, 0, len(host.GetExtensions()))
	for id, ext := range host.GetExtensions() {
		if _, ok := ext.(Router); ok {
			ids = append(ids, id)
		}
	}
	// In a stable order, so that the reason given does not change from start to start.
	slices.SortFunc(ids, func(a, b component.ID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		w, reason := host.GetExtensions()[id].(Router).SeriesWriter(receiver)
		if w != nil {
			return w, id, ""
		}
		if why == "" {
			why = reason
		}
	}
	return nil, component.ID{}, why
}
