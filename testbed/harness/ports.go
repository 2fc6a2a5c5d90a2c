package harness

import (
	"net"
	"strconv"
	"testing"
)

// Ports are the loopback TCP ports one collector instance listens on.
type Ports struct {
	OTLPGRPC  int // OTLP gRPC receiver
	OTLPHTTP  int // OTLP HTTP receiver
	PromQL    int // promql extension (Prometheus HTTP API)
	Telemetry int // the collector's own metrics (Prometheus pull reader)
}

// NewPorts picks free loopback ports. Another process may take a port between this call and
// the collector's start; the tests accept that small race.
func NewPorts(t testing.TB) Ports {
	t.Helper()
	ports := FreePorts(t, 4)
	return Ports{OTLPGRPC: ports[0], OTLPHTTP: ports[1], PromQL: ports[2], Telemetry: ports[3]}
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// Addr returns 127.0.0.1:port.
func Addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// OTLPGRPCAddr is the OTLP gRPC endpoint, host:port.
func (p Ports) OTLPGRPCAddr() string { return Addr(p.OTLPGRPC) }

// OTLPHTTPURL is the base URL of the OTLP HTTP receiver.
func (p Ports) OTLPHTTPURL() string { return "http://" + Addr(p.OTLPHTTP) }

// PromQLURL is the base URL of the Prometheus HTTP API.
func (p Ports) PromQLURL() string { return "http://" + Addr(p.PromQL) }
