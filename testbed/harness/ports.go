package harness

import (
	"net"
	"strconv"
	"sync"
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

// handedOut holds every port FreePorts returned in this process: a port closed by FreePorts is
// free again for the kernel, so two calls (a test's NewConfig, then one more port for its remote
// write receiver) could otherwise return the same port, and the binary fails to bind it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePorts returns n distinct free TCP ports on 127.0.0.1, none of them returned before by this
// process.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		// Kept open until the end either way, so that the kernel offers another port next.
		listeners = append(listeners, l)
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		ports = append(ports, port)
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
