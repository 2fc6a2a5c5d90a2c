package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// apiResponse is the Prometheus HTTP API envelope.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// getAPI sends GET path?params and decodes the envelope.
func getAPI(t *testing.T, ports harness.Ports, path string, params url.Values) (int, apiResponse) {
	t.Helper()
	u := ports.PromQLURL() + path + "?" + params.Encode()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("GET %s: %s: body is not an API envelope (%v): %s", u, resp.Status, err, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("GET %s: Content-Type %q, want application/json", u, ct)
	}
	return resp.StatusCode, r
}

// TestQueryErrors checks the HTTP status and errorType of failing queries: a malformed query is
// 400 bad_data, a query over max_samples is 422 execution.
func TestQueryErrors(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.MaxSamples = 10
	harness.StartReady(t, "metricstor", binary, cfg.Write(t), cfg.Ports)
	f := newFixture("grpc-1", startTime())
	pushSteps(t, pushGRPC, cfg.Ports, f, 0, steps)
	at := f.last().Format(time.RFC3339Nano)
	first := f.at(0).Format(time.RFC3339Nano)

	cases := []struct {
		name      string
		path      string
		params    url.Values
		code      int
		errorType string
		errorHas  string
	}{
		{
			name: "malformed", path: "/api/v1/query",
			params: url.Values{"query": {"sum(rate(" + counterName + "[1m]"}, "time": {at}},
			code:   http.StatusBadRequest, errorType: "bad_data", errorHas: "parse error",
		},
		{
			name: "malformed_range", path: "/api/v1/query_range",
			params: url.Values{"query": {counterName + "{"}, "start": {at}, "end": {at}, "step": {"15s"}},
			code:   http.StatusBadRequest, errorType: "bad_data", errorHas: "parse error",
		},
		{
			name: "bad_step", path: "/api/v1/query_range",
			params: url.Values{"query": {counterName}, "start": {at}, "end": {at}, "step": {"0"}},
			code:   http.StatusBadRequest, errorType: "bad_data", errorHas: "step",
		},
		{
			// 14 series at one instant: more than max_samples (10) held at once.
			name: "too_many_samples", path: "/api/v1/query",
			params: url.Values{"query": {allSeries}, "time": {at}},
			code:   http.StatusUnprocessableEntity, errorType: "execution", errorHas: "too many samples",
		},
		{
			name: "too_many_samples_range", path: "/api/v1/query_range",
			params: url.Values{"query": {allSeries}, "start": {first}, "end": {at}, "step": {"15s"}},
			code:   http.StatusUnprocessableEntity, errorType: "execution", errorHas: "too many samples",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, r := getAPI(t, cfg.Ports, tc.path, tc.params)
			if code != tc.code || r.Status != "error" || r.ErrorType != tc.errorType || !strings.Contains(r.Error, tc.errorHas) {
				t.Errorf("GET %s %v: got %d status=%q errorType=%q error=%q; want %d status=\"error\" errorType=%q error containing %q",
					tc.path, tc.params, code, r.Status, r.ErrorType, r.Error, tc.code, tc.errorType, tc.errorHas)
			}
		})
	}

	// Under the limit the same server answers: the limit is not a blanket failure.
	code, r := getAPI(t, cfg.Ports, "/api/v1/query", url.Values{"query": {counterName}, "time": {at}})
	if code != http.StatusOK || r.Status != "success" {
		t.Errorf("query %s under max_samples: got %d %q %q %q, want 200 success", counterName, code, r.Status, r.ErrorType, r.Error)
	}
}

// TestMissingStorageExtension checks that a component whose `storage:` names no existing
// extension stops the collector at start-up with an error naming the ID.
func TestMissingStorageExtension(t *testing.T) {
	binary := harness.Binary(t)
	for _, tc := range []struct {
		name string
		set  func(*harness.Config)
	}{
		{"exporter", func(c *harness.Config) { c.ExporterStorage = "metricstor/nosuchstore" }},
		{"promql", func(c *harness.Config) { c.PromQLStorage = "metricstor/nosuchstore" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := harness.NewConfig(t)
			tc.set(&cfg)
			code, out := harness.RunToExit(t, binary, time.Minute, "--config", cfg.Write(t))
			if code == 0 {
				t.Errorf("exit code 0, want non-zero; output:\n%s", out)
			}
			if !strings.Contains(out, "metricstor/nosuchstore") {
				t.Errorf("output does not name the missing extension %q:\n%s", "metricstor/nosuchstore", out)
			}
		})
	}
}
