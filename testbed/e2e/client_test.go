package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// pushGRPC sends md through the OTLP gRPC exporter API and fails the test unless the whole
// request was accepted.
func pushGRPC(t *testing.T, ports harness.Ports, md pmetric.Metrics) {
	t.Helper()
	conn, err := grpc.NewClient(ports.OTLPGRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial OTLP gRPC %s: %v", ports.OTLPGRPCAddr(), err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	if err != nil {
		t.Fatalf("OTLP gRPC export of %d data points: %v", md.DataPointCount(), err)
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 0 || ps.ErrorMessage() != "" {
		t.Fatalf("OTLP gRPC export: partial success, %d data points rejected: %s", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
}

// pushHTTP POSTs md as protobuf to /v1/metrics and fails the test unless the answer is 200
// with no rejected data points.
func pushHTTP(t *testing.T, ports harness.Ports, md pmetric.Metrics) {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatalf("marshal OTLP request: %v", err)
	}
	url := ports.OTLPHTTPURL() + "/v1/metrics"
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	respBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, respBody)
	}
	er := pmetricotlp.NewExportResponse()
	if err := er.UnmarshalProto(respBody); err != nil {
		t.Fatalf("POST %s: decode response: %v", url, err)
	}
	if ps := er.PartialSuccess(); ps.RejectedDataPoints() != 0 || ps.ErrorMessage() != "" {
		t.Fatalf("POST %s: partial success, %d data points rejected: %s", url, ps.RejectedDataPoints(), ps.ErrorMessage())
	}
}

// pushSteps pushes steps from..to-1 of f, one request per step, with push.
func pushSteps(t *testing.T, push func(*testing.T, harness.Ports, pmetric.Metrics), ports harness.Ports, f fixture, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		push(t, ports, f.metrics(i))
	}
}

func newAPI(t *testing.T, ports harness.Ports) promv1.API {
	t.Helper()
	client, err := promapi.NewClient(promapi.Config{Address: ports.PromQLURL()})
	if err != nil {
		t.Fatalf("Prometheus API client: %v", err)
	}
	return promv1.NewAPI(client)
}

func queryCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiError describes an error of the Prometheus client with its type and detail.
func apiError(err error) string {
	if e, ok := err.(*promv1.Error); ok {
		return fmt.Sprintf("%s: %s (%s)", e.Type, e.Msg, e.Detail)
	}
	return err.Error()
}
