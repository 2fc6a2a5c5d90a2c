package harness

import (
	"fmt"
	"testing"
	"time"
)

// Collector is the binary on one configuration (one config file, one set of ports, one data
// directory) that is started, stopped, killed and started again on the same data any number of
// times: restarts, kill -9 loops, soaks. Proc is the current process, or the last one.
//
// A Collector is driven from one goroutine (the test's); Proc may be read from others only
// while that goroutine does not start a new process.
type Collector struct {
	Name       string
	Binary     string
	Config     Config
	ConfigPath string
	// ReadyTimeout bounds each start until every probe passes (default one minute).
	ReadyTimeout time.Duration

	Proc   *Process
	Starts int // processes started so far

	t testing.TB
}

// NewCollector writes cfg into a file and returns a Collector on it, not started.
func NewCollector(t testing.TB, name, binary string, cfg Config) *Collector {
	t.Helper()
	return &Collector{Name: name, Binary: binary, Config: cfg, ConfigPath: cfg.Write(t), ReadyTimeout: time.Minute, t: t}
}

// Running reports whether the current process is running.
func (c *Collector) Running() bool { return c.Proc != nil && !c.Proc.Exited() }

// Start starts a new process on the same configuration and data and waits until it is ready
// (Config.Probes); it returns the time from the start of the process until then. It fails the
// test if the previous process still runs or the new one does not become ready.
func (c *Collector) Start() time.Duration {
	c.t.Helper()
	took, err := c.TryStart()
	if err != nil {
		c.t.Fatal(err)
	}
	return took
}

// TryStart is Start returning the failure instead of failing the test (a soak reports it and
// goes on). A process that did not become ready is killed.
func (c *Collector) TryStart() (time.Duration, error) {
	if c.Running() {
		return 0, fmt.Errorf("start %s: the previous process (pid %d) still runs", c.Name, c.Proc.Pid())
	}
	c.Starts++
	started := time.Now()
	c.Proc = Start(c.t, fmt.Sprintf("%s (start %d)", c.Name, c.Starts), c.Binary, "--config", c.ConfigPath)
	if err := c.Proc.waitFor(c.ReadyTimeout, c.Config.Probes()); err != nil {
		c.Proc.Kill()
		return 0, err
	}
	return time.Since(started), nil
}

// Kill sends SIGKILL (kill -9) to the current process and waits until it is gone.
func (c *Collector) Kill() {
	c.t.Helper()
	if c.Proc != nil {
		c.Proc.Kill()
	}
}

// Stop sends SIGTERM to the current process and waits for a clean exit, failing the test
// otherwise.
func (c *Collector) Stop(timeout time.Duration) {
	c.t.Helper()
	if c.Proc != nil {
		c.Proc.Stop(timeout)
	}
}
