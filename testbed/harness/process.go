package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a running child process (the otelcol-metricstor binary, or a peer the benchmarks
// compare it with). Its stdout and stderr are kept in memory (the last few MB) and logged when
// the test fails. A process still running at the end of the test is killed.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited and waitErr is set
	// waitErr is the result of cmd.Wait; read it only after done is closed.
	waitErr error
}

// Start starts binary with args (typically "--config", path). name labels its output in logs.
func Start(t testing.TB, name, binary string, args ...string) *Process {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(binary, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %v: %v", binary, args, err)
	}
	p := &Process{t: t, name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		state := p.State()
		if !p.Exited() {
			state = "still running at the end of the test, killed"
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("output of %s (pid %d, %s):\n%s", p.name, cmd.Process.Pid, state, p.Output())
		}
	})
	return p
}

// Name is the label given at Start.
func (p *Process) Name() string { return p.name }

// Pid is the process id, for readings of /proc/<pid>.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process wrote to stdout and stderr so far (the last few MB).
func (p *Process) Output() string { return p.out.String() }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode returns the exit code of an exited process, -1 if it was killed by a signal.
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// State describes the process: "running", or how it exited ("exit status 1", "signal: killed").
func (p *Process) State() string {
	if !p.Exited() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// A Probe is one readiness check: an http:// URL that must answer 200, or "tcp://host:port"
// that must accept a connection. HTTPProbe and TCPProbe build them.
type Probe string

// HTTPProbe is a probe of url (it must answer 200).
func HTTPProbe(url string) Probe { return Probe(url) }

// TCPProbe is a probe of 127.0.0.1:port (it must accept a connection).
func TCPProbe(port int) Probe { return Probe("tcp://" + Addr(port)) }

var probeClient = &http.Client{Timeout: time.Second}

// Check runs the probe once.
func (pr Probe) Check() error {
	if addr, ok := strings.CutPrefix(string(pr), "tcp://"); ok {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	resp, err := probeClient.Get(string(pr))
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", pr, resp.Status)
	}
	return nil
}

// Probes are the readiness checks of a collector on ports: the promql extension answers 200 on
// /-/ready and both OTLP ports accept connections.
func (p Ports) Probes() []Probe {
	return []Probe{HTTPProbe(p.PromQLURL() + "/-/ready"), TCPProbe(p.OTLPGRPC), TCPProbe(p.OTLPHTTP)}
}

// WaitFor waits until every probe passes, checking every 20 ms (fine-grained, since restart
// times are read from it). It fails the test with the process output if the process exits
// first or the timeout passes.
func (p *Process) WaitFor(timeout time.Duration, probes ...Probe) {
	p.t.Helper()
	if err := p.waitFor(timeout, probes); err != nil {
		p.t.Fatal(err)
	}
}

func (p *Process) waitFor(timeout time.Duration, probes []Probe) error {
	deadline := time.Now().Add(timeout)
	for _, pr := range probes {
		for {
			if p.Exited() {
				return fmt.Errorf("%s exited before it was ready (%s); output:\n%s", p.name, p.State(), p.Output())
			}
			err := pr.Check()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %s: %v", p.name, timeout, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// WaitReady waits until the promql extension answers 200 on /-/ready and both OTLP ports accept
// connections (ports.Probes()), and the extra probes pass (e.g. TCPProbe of the remote_write
// receiver). It fails the test with the process output if the process exits first or the
// timeout passes.
func (p *Process) WaitReady(ports Ports, timeout time.Duration, extra ...Probe) {
	p.t.Helper()
	p.WaitFor(timeout, append(ports.Probes(), extra...)...)
}

// StartReady starts binary on configPath and waits (up to a minute) until the listeners in
// ports, and the extra probes, answer.
func StartReady(t testing.TB, name, binary, configPath string, ports Ports, extra ...Probe) *Process {
	t.Helper()
	p := Start(t, name, binary, "--config", configPath)
	p.WaitReady(ports, time.Minute, extra...)
	return p
}

// Stop sends SIGTERM and waits for a clean exit (code 0), failing the test otherwise.
func (p *Process) Stop(timeout time.Duration) {
	p.t.Helper()
	if err := p.Terminate(timeout); err != nil {
		p.t.Fatal(err)
	}
}

// Terminate sends SIGTERM and waits for a clean exit (code 0); unlike Stop it returns the
// failure instead of failing the test (a process still running at the timeout is left running).
func (p *Process) Terminate(timeout time.Duration) error {
	p.waitStarted(timeout)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		return fmt.Errorf("SIGTERM %s: %v", p.name, err)
	}
	if !p.WaitExit(timeout) {
		return fmt.Errorf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
	if code := p.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited with code %d after SIGTERM (%v); output:\n%s", p.name, code, p.waitErr, p.Output())
	}
	return nil
}

// A collector installs its SIGTERM handler only once every component has started, after it logs
// collectorReadyLine; its listeners answer the readiness probes before that, and a SIGTERM in
// between ends it uncleanly. A collector logging at info level says when it starts and when it
// is done.
const (
	collectorStartingLine = "Starting otelcol-metricstor..."
	collectorReadyLine    = "Everything is ready. Begin running and processing data."
)

// waitStarted waits (up to timeout) until a collector that logged its start has logged that it
// is ready; other processes, and collectors logging above info, are not waited for.
func (p *Process) waitStarted(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !p.Exited() && time.Now().Before(deadline) {
		out := p.Output()
		if !strings.Contains(out, collectorStartingLine) || strings.Contains(out, collectorReadyLine) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *Process) Kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.Exited() {
		p.t.Fatalf("SIGKILL %s: %v", p.name, err)
	}
	<-p.done
}

// WaitExit waits up to timeout for the process to exit and reports whether it did.
func (p *Process) WaitExit(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// RunToExit runs binary with args and waits up to timeout for it to exit on its own. It returns
// the exit code and the output; the test fails if the process is still running at the timeout.
func RunToExit(t testing.TB, binary string, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v still running after %s, expected it to exit; output:\n%s", binary, args, timeout, out.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s %v: %v", binary, args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of stdout and stderr. It keeps
// the last few MB only: a server logging an error per request (a soak with a full disk) must
// not eat the memory of the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const (
	outputMax  = 4 << 20 // above this, the output is cut down to its last outputKeep bytes
	outputKeep = 1 << 20
)

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > outputMax {
		rest := b.buf.Bytes()[b.buf.Len()-outputKeep:]
		b.buf = *bytes.NewBuffer(append([]byte("[earlier output dropped]\n"), rest...))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
