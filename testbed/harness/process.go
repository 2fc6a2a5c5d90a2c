package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a running otelcol-metricstor. Its stdout and stderr are kept in memory and logged
// when the test fails. A process still running at the end of the test is killed.
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
		state := p.state()
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

// Output returns everything the process wrote to stdout and stderr so far.
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

func (p *Process) state() string {
	if !p.Exited() {
		return "running"
	}
	return p.cmd.ProcessState.String()
}

// WaitReady waits until the promql extension answers 200 on /-/ready and both OTLP ports accept
// connections. It fails the test with the process output if the process exits first or the
// timeout passes.
func (p *Process) WaitReady(ports Ports, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	readyURL := ports.PromQLURL() + "/-/ready"
	var last error
	for {
		if p.Exited() {
			p.t.Fatalf("%s exited before it was ready (%s); output:\n%s", p.name, p.state(), p.Output())
		}
		last = probe(client, readyURL, ports)
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after %s: %v", p.name, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func probe(client *http.Client, readyURL string, ports Ports) error {
	resp, err := client.Get(readyURL)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", readyURL, resp.Status)
	}
	for _, port := range []int{ports.OTLPGRPC, ports.OTLPHTTP} {
		conn, err := net.DialTimeout("tcp", Addr(port), time.Second)
		if err != nil {
			return err
		}
		_ = conn.Close()
	}
	return nil
}

// StartReady starts binary on configPath and waits (up to a minute) until
// the listeners in ports answer.
func StartReady(t testing.TB, name, binary, configPath string, ports Ports) *Process {
	t.Helper()
	p := Start(t, name, binary, "--config", configPath)
	p.WaitReady(ports, time.Minute)
	return p
}

// Stop sends SIGTERM and waits for a clean exit (code 0), failing the test otherwise.
func (p *Process) Stop(timeout time.Duration) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
		p.t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	if !p.WaitExit(timeout) {
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
	if code := p.ExitCode(); code != 0 {
		p.t.Fatalf("%s exited with code %d after SIGTERM (%v); output:\n%s", p.name, code, p.waitErr, p.Output())
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

// syncBuffer is a bytes.Buffer safe for the concurrent writes of stdout and stderr.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
