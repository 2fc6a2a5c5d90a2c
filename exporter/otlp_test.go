package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/storage"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startOTLP starts the collector's own OTLP receiver (gRPC and HTTP) in front of the exporter h
// and returns the gRPC address and the HTTP base URL.
func startOTLP(t *testing.T, h *harness) (grpcAddr, httpURL string) {
	t.Helper()
	grpcAddr, httpAddr := freePort(t), freePort(t)
	f := otlpreceiver.NewFactory()
	cfg := f.CreateDefaultConfig()
	require.NoError(t, confmap.NewFromStringMap(map[string]any{"protocols": map[string]any{
		"grpc": map[string]any{"endpoint": grpcAddr},
		"http": map[string]any{"endpoint": httpAddr},
	}}).Unmarshal(cfg))
	set := receiver.Settings{ID: component.NewID(f.Type()), TelemetrySettings: componenttest.NewNopTelemetrySettings(), BuildInfo: component.NewDefaultBuildInfo()}
	rcv, err := f.CreateMetrics(context.Background(), set, cfg, h.exp)
	require.NoError(t, err)
	require.NoError(t, rcv.Start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, rcv.Shutdown(context.Background())) })
	return grpcAddr, "http://" + httpAddr
}

// exportGRPC sends md with the pdata OTLP gRPC client and returns the status of the answer.
func exportGRPC(t *testing.T, addr string, md pmetric.Metrics) *status.Status {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.WaitForReady(true))
	if err == nil {
		assert.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	}
	return status.Convert(err)
}

// exportHTTP POSTs md as OTLP/HTTP protobuf and returns the HTTP status and the decoded
// google.rpc.Status message of an error.
func exportHTTP(t *testing.T, url string, md pmetric.Metrics) (int, string) {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	var resp *http.Response
	require.Eventually(t, func() bool { // the HTTP server starts serving in the background
		resp, err = http.Post(url+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
		return err == nil
	}, 30*time.Second, 10*time.Millisecond)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, string(b)
}

// TestOTLPReceiverAnswers runs the collector's own OTLP receiver in front of the exporter and a
// store that refuses in each way, with real OTLP clients over gRPC and HTTP: what the client is
// told, and what is stored. (testbed/e2e shows the duplicate case against the built binary.)
func TestOTLPReceiverAnswers(t *testing.T) {
	const id = `instance="pod-1", job="shop/checkout"`
	used := `{__name__="memory_usage_bytes", ` + id + `, state="used"}`
	free := `{__name__="memory_usage_bytes", ` + id + `, state="free"}`
	for _, tc := range []struct {
		name      string
		appendErr func(labels.Labels) error
		commitErr error
		code      codes.Code
		httpCode  int
		msg       string
		stored    []string
	}{
		{name: "all stored", code: codes.OK, httpCode: http.StatusOK, stored: []string{free, used}},
		{
			name:      "duplicate",
			appendErr: refusedFor("free", fmt.Errorf("series x: %w", promstorage.ErrDuplicateSampleForTimestamp)),
			code:      codes.InvalidArgument, httpCode: http.StatusBadRequest,
			msg: "store rejected 1 of 2 samples (duplicate=1), the other 1 were stored", stored: []string{used},
		},
		{
			name: "limit exceeded, nothing stored",
			appendErr: func(labels.Labels) error {
				return fmt.Errorf("%w: more than max_series (10)", storage.ErrLimitExceeded)
			},
			code: codes.InvalidArgument, httpCode: http.StatusBadRequest,
			msg: "more than max_series (10)",
		},
		{
			name:      "store unavailable",
			commitErr: fmt.Errorf("%w: no space left on device", storage.ErrUnavailable),
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			msg: "no space left on device",
		},
		{
			name:      "store not running",
			appendErr: func(labels.Labels) error { return storage.ErrNotRunning },
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			msg: storage.ErrNotRunning.Error(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, proto := range []string{"grpc", "http"} {
				t.Run(proto, func(t *testing.T) {
					base := newTSDBStore(t)
					h := newHarness(t, refusingStore{tsdbStore: base, appendErr: tc.appendErr, commitErr: tc.commitErr},
						func(cfg *Config) { cfg.TargetInfo = false })
					grpcAddr, httpURL := startOTLP(t, h)
					if proto == "grpc" {
						st := exportGRPC(t, grpcAddr, twoGauges(t0))
						assert.Equal(t, tc.code, st.Code(), st.Message())
						assert.Contains(t, st.Message(), tc.msg)
					} else {
						code, body := exportHTTP(t, httpURL, twoGauges(t0))
						assert.Equal(t, tc.httpCode, code, body)
						assert.Contains(t, body, tc.msg)
					}
					assert.ElementsMatch(t, tc.stored, keys(dump(t, base)))
				})
			}
		})
	}
}
