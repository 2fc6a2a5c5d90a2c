package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/metricstor/metricstor/internal/metadatatest"
	"github.com/metricstor/metricstor/testbed/harness"
)

// TestTelemetryMatchesMetadata reads the binary's own metrics (its Prometheus telemetry
// endpoint) after a push and checks that the storage extension's and the exporter's metrics are
// there with the descriptions and attribute values of their metadata.yaml.
func TestTelemetryMatchesMetadata(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg := harness.NewConfig(t)
	c := harness.NewCollector(t, "metricstor", harness.Binary(t), cfg)
	c.Start()
	defer c.Stop(time.Minute)
	pushSteps(t, pushHTTP, cfg.Ports, newFixture("telemetry", startTime()), 0, 2)

	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", harness.Addr(cfg.Ports.Telemetry)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// The Prometheus exporter of the collector's telemetry appends the unit and _total to names.
	exported := func(name string) *dto.MetricFamily {
		for _, suffix := range []string{"", "_total", "_bytes", "_ratio"} {
			if f, ok := families[name+suffix]; ok {
				return f
			}
		}
		return nil
	}

	for _, component := range []struct {
		dir string
		// mustReport are the metrics that must be there after a push: the storage extension
		// observes all of its on each collection; the exporter's counters appear once counted.
		mustReport func(name string) bool
	}{
		{"storage", func(string) bool { return true }},
		{"exporter", func(name string) bool { return name == "metricstor_exporter_samples_accepted" }},
	} {
		md := metadatatest.Read(t, filepath.Join(root, component.dir, "metadata.yaml"))
		for name, m := range md.Telemetry.Metrics {
			f := exported(name)
			if f == nil {
				if component.mustReport(name) {
					t.Errorf("%s: %s is not in the binary's telemetry", component.dir, name)
				}
				continue
			}
			if f.GetHelp() != m.Description {
				t.Errorf("%s: %s: HELP %q, metadata.yaml says %q", component.dir, f.GetName(), f.GetHelp(), m.Description)
			}
			for _, id := range m.Attributes {
				attr := md.AttributeName(id)
				var values []string
				for _, s := range f.GetMetric() {
					for _, l := range s.GetLabel() {
						if l.GetName() == attr && !slices.Contains(values, l.GetValue()) {
							values = append(values, l.GetValue())
						}
					}
				}
				sort.Strings(values)
				enum := md.Enum(t, id)
				if component.dir == "storage" {
					// Every reason is observed, zeros included.
					if !slices.Equal(values, enum) {
						t.Errorf("%s: %s{%s}: values %v, metadata.yaml declares %v", component.dir, f.GetName(), attr, values, enum)
					}
					continue
				}
				for _, v := range values {
					if !slices.Contains(enum, v) {
						t.Errorf("%s: %s{%s=%q} is not in metadata.yaml's enum %v", component.dir, f.GetName(), attr, v, enum)
					}
				}
			}
		}
	}
}
