package e2e

import (
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestOTLPRoundTrip pushes every OTLP metric kind through the OTLP gRPC and HTTP receivers (one
// service instance each) and reads them back through the Prometheus HTTP API.
func TestOTLPRoundTrip(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	harness.StartReady(t, "metricstor", binary, cfg.Write(t), cfg.Ports)

	start := startTime()
	viaGRPC := newFixture("grpc-1", start)
	viaHTTP := newFixture("http-1", start)
	pushSteps(t, pushGRPC, cfg.Ports, viaGRPC, 0, steps)
	pushSteps(t, pushHTTP, cfg.Ports, viaHTTP, 0, steps)

	checkReadBack(t, newAPI(t, cfg.Ports), []fixture{viaGRPC, viaHTTP})
}

// TestReadYourWrites checks that each acknowledged push is visible to the very next query.
func TestReadYourWrites(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	harness.StartReady(t, "metricstor", binary, cfg.Write(t), cfg.Ports)
	api := newAPI(t, cfg.Ports)

	f := newFixture("ryw-1", startTime())
	for i := range steps {
		pushGRPC(t, cfg.Ports, f.metrics(i))
		q := counterName + `{instance="ryw-1"}`
		res, _, _, err := api.Query(queryCtx(t), q, f.at(i).Add(time.Second))
		if err != nil {
			t.Fatalf("query %s: %s", q, apiError(err))
		}
		checkVector(t, q, vectorOf(t, q, res), f.expectedNamed(i, counterName), f.at(i).Add(time.Second))
	}
}
