package serverbench

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// Server is one system under test, running as a child process.
type Server struct {
	Name     string
	WriteURL string // remote write 1.0 endpoint
	QueryURL string // base URL of the Prometheus HTTP API
	DataDir  string

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// Pid is the process id of the server.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Output returns what the server wrote to stdout and stderr so far.
func (s *Server) Output() string { return s.out.String() }

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to timeout for a clean exit; it fails the test otherwise (the
// process is then killed).
func (s *Server) Stop(t testing.TB, timeout time.Duration) {
	t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("%s did not exit within %s of SIGTERM; output:\n%s", s.Name, timeout, s.Output())
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited with code %d after SIGTERM; output:\n%s", s.Name, code, s.Output())
	}
}

// start runs binary with args, kills it at the end of the test if still running, and waits until
// every URL in ready answers 200 (a "tcp://host:port" entry only needs to accept connections).
func start(t testing.TB, name, dataDir, writeURL, queryURL, binary string, args []string, ready ...string) *Server {
	t.Helper()
	s := &Server{Name: name, WriteURL: writeURL, QueryURL: queryURL, DataDir: dataDir, out: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binary, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", binary, err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		if !s.exited() {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("output of %s (pid %d):\n%s", name, s.Pid(), s.Output())
		}
	})
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for _, u := range ready {
		for {
			if s.exited() {
				t.Fatalf("%s exited before it was ready; output:\n%s", name, s.Output())
			}
			var err error
			if addr, ok := strings.CutPrefix(u, "tcp://"); ok {
				var conn net.Conn
				if conn, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
					_ = conn.Close()
				}
			} else {
				var resp *http.Response
				if resp, err = client.Get(u); err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", u, resp.Status)
					}
				}
			}
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready: %v", name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return s
}

// StartMetricstor starts the otelcol-metricstor binary on the default settings.
func StartMetricstor(t testing.TB, binary string) *Server {
	t.Helper()
	// config.yaml's pipeline and settings (both receivers, exporter without queue, retention
	// 15d, default partitioning) on free loopback ports and a temporary data directory.
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.Retention = "15d"
	config := cfg.Write(t)
	v := struct {
		Write, PromQL int
		DataDir       string
	}{cfg.RemoteWrite, cfg.Ports.PromQL, cfg.DataDir}
	query := "http://" + harness.Addr(v.PromQL)
	return start(t, "metricstor", v.DataDir, "http://"+harness.Addr(v.Write)+"/api/v1/write", query,
		binary, []string{"--config", config}, query+"/-/ready", "tcp://"+harness.Addr(v.Write))
}

// StartPrometheus starts Prometheus with its remote write receiver, nothing to scrape, and its
// default TSDB settings on a temporary directory.
func StartPrometheus(t testing.TB, binary string) *Server {
	t.Helper()
	port := harness.FreePorts(t, 1)[0]
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte("global: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	base := "http://" + harness.Addr(port)
	return start(t, "prometheus", data, base+"/api/v1/write", base, binary, []string{
		"--config.file=" + config,
		"--storage.tsdb.path=" + data,
		"--web.listen-address=" + harness.Addr(port),
		"--web.enable-remote-write-receiver",
	}, base+"/-/ready")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the last few MB only: a server logging an error per request must not eat the memory.
	if b.buf.Len() > 4<<20 {
		rest := b.buf.Bytes()[b.buf.Len()-1<<20:]
		b.buf = *bytes.NewBuffer(append([]byte("[earlier output dropped]\n"), rest...))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
