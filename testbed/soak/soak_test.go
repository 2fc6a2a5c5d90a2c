package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
	"github.com/metricstor/metricstor/testbed/workload"
)

const enableEnv = "METRICSTOR_SOAK"

// The events, in the order they come round.
const (
	evRestart  = "restart (SIGTERM)"
	evKill     = "kill -9"
	evDiskFull = "disk full"
	evCrash    = "exited by itself" // noticed between events: restarted at once
	evFinal    = "final restart"
)

// recoverWithin bounds the wait, after an event, for every stream to have a round acknowledged.
const recoverWithin = time.Minute

// event is one event of the soak and what the load saw from its start until it recovered.
type event struct {
	kind      string
	at        time.Duration // since the start of the soak
	ready     time.Duration // start of the new process until ready (restarts)
	recovered time.Duration // from the event until every stream had a round acknowledged; 0 if not
	attempts  [6]int64      // by workload.Outcome, over the event
	note      string
}

func TestSoak(t *testing.T) {
	if os.Getenv(enableEnv) != "1" {
		t.Skipf("skipped: the soak runs for minutes and is not part of `make test`; it runs with `make soak` (which sets %s=1)", enableEnv)
	}
	s := loadSettings(t)
	binary := harness.Binary(t)

	dir := t.TempDir()
	var notes []string
	if !s.diskFull {
		notes = append(notes, "disk-full events off (SOAK_DISKFULL=0)")
	} else if err := mountTmpfs(t, dir, s.tmpfsSize); err != nil {
		s.diskFull = false
		notes = append(notes, fmt.Sprintf("disk-full events skipped: cannot mount a tmpfs on the data directory (%v)", err))
	}
	for _, n := range notes {
		fmt.Println("soak:", n)
	}

	rounds := int(s.duration/s.pace)*11/10 + 200
	if rounds > loadgen.MaxSamples {
		t.Fatalf("SOAK_DURATION=%s at SOAK_PACE=%s needs %d rounds per stream, more than the %d a stream has: lengthen the pace", s.duration, s.pace, rounds, loadgen.MaxSamples)
	}
	cfg := harness.NewConfig(t)
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.LogLevel = "warn"
	c := harness.NewCollector(t, "metricstor (soak)", binary, cfg)
	w, err := workload.New(workload.Config{
		RemoteWriteURL: cfg.RemoteWriteURL(), OTLPGRPCAddr: cfg.Ports.OTLPGRPCAddr(), OTLPHTTPURL: cfg.Ports.OTLPHTTPURL(),
		RemoteWriteStreams: 2, RemoteWriteSeries: s.rwSeries,
		OTLPGRPCStreams: 1, OTLPHTTPStreams: 1, OTLPSeries: s.otlpSeries,
		Rounds: rounds, Step: time.Second, RequestTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	client, err := promapi.NewClient(promapi.Config{Address: cfg.Ports.PromQLURL()})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(client)

	var cur atomic.Pointer[current]
	start := func() (time.Duration, error) {
		ready, err := c.TryStart()
		cur.Store(&current{proc: c.Proc, started: time.Now().Add(-ready)})
		return ready, err
	}
	if _, err := start(); err != nil {
		t.Fatal(err)
	}
	soakStart := time.Now()
	loadCtx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	waitLoad := w.Start(loadCtx, s.pace, 100*time.Millisecond)
	queries, waitQueries := startQueriers(loadCtx, api, w, 2)
	smp, waitSampler := startSampler(loadCtx, &cur, api, soakStart, 2*time.Second)

	kinds := []string{evRestart, evKill}
	if s.diskFull {
		kinds = append(kinds, evDiskFull)
	}
	var events []event
	// restartAfter records an event that ends in a start of the process.
	restartAfter := func(ev *event) {
		ready, err := start()
		ev.ready = ready
		if err != nil {
			ev.note = strings.TrimSpace(ev.note + " start failed: " + firstLine(err.Error()))
			// Try once more: the soak goes on and reports.
			if _, err := start(); err != nil {
				t.Errorf("%s at %s: the binary does not start again: %v", ev.kind, ev.at, err)
			}
		}
	}
	deadline := soakStart.Add(s.duration)
	for i := 0; ; i++ {
		next := soakStart.Add(time.Duration(i+1) * s.eventEvery)
		last := next.Add(s.eventEvery / 2).After(deadline)
		if last {
			next = deadline
		}
		// Wait for the event, restarting a process that exited by itself.
		for time.Now().Before(next) {
			time.Sleep(min(500*time.Millisecond, time.Until(next)))
			if !c.Running() {
				ev := event{kind: evCrash, at: time.Since(soakStart), note: c.Proc.Output()[max(0, len(c.Proc.Output())-200):]}
				ev.note = "exit: " + firstLine(c.Proc.State()) + "; " + lastLine(ev.note)
				begin := snapshot(w)
				restartAfter(&ev)
				ev.recovered = waitRecovered(w, soakStart.Add(ev.at), recoverWithin)
				ev.attempts = delta(begin, snapshot(w))
				events = append(events, ev)
			}
		}
		if last {
			break
		}
		ev := event{kind: kinds[i%len(kinds)], at: time.Since(soakStart)}
		eventStart := time.Now()
		begin := snapshot(w)
		switch ev.kind {
		case evRestart:
			if err := c.Proc.Terminate(30 * time.Second); err != nil {
				ev.note = stopFailure(c, err)
			}
			restartAfter(&ev)
		case evKill:
			c.Kill()
			restartAfter(&ev)
		case evDiskFull:
			ev.note = fillDisk(dir, s.hold, c)
		}
		ev.recovered = waitRecovered(w, eventStart, recoverWithin)
		ev.attempts = delta(begin, snapshot(w))
		if ev.recovered == 0 {
			ev.note = strings.TrimSpace(ev.note + fmt.Sprintf(" writes not acknowledged again within %s", recoverWithin))
		}
		events = append(events, ev)
	}
	elapsed := time.Since(soakStart)
	stopLoad()
	for _, err := range waitLoad() {
		t.Errorf("load: %v", err)
	}
	waitQueries()
	waitSampler()

	// The count back, after a last clean restart.
	final := event{kind: evFinal, at: time.Since(soakStart)}
	if c.Running() {
		if err := c.Proc.Terminate(time.Minute); err != nil {
			final.note = stopFailure(c, err)
		}
	}
	restartAfter(&final)
	events = append(events, final)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := w.Verify(ctx, api)
	if err != nil {
		t.Fatalf("count back: %v", err)
	}

	trends := smp.trends(s.duration)
	summary := report(s, elapsed, notes, w, queries, events, rep, trends, smp)
	fmt.Print(summary)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(summary), 0o644); err != nil {
			t.Errorf("write %s: %v", s.out, err)
		}
	}
	if rep.Lost() != 0 || rep.Wrong() != 0 {
		t.Errorf("%d acknowledged samples lost, %d wrong samples read back:\n%s", rep.Lost(), rep.Wrong(), rep.Problems())
	}
	for _, ev := range events {
		if ev.kind != evFinal && ev.recovered == 0 {
			t.Errorf("%s at %s: writes not acknowledged again within %s (%s)", ev.kind, ev.at.Round(time.Second), recoverWithin, ev.note)
		}
		if ev.kind == evCrash {
			t.Errorf("the binary exited by itself at %s: %s", ev.at.Round(time.Second), ev.note)
		}
	}
	for _, tr := range trends {
		if !tr.flat {
			t.Errorf("not flat at the end: %s (middle third %d readings, last third %d)", tr, tr.nMiddle, tr.nLast)
		}
	}
}

// mountTmpfs mounts a tmpfs of size on dir and unmounts it at the end of the test (after the
// processes, whose cleanups were registered later, are gone).
func mountTmpfs(t *testing.T, dir, size string) error {
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mount -t tmpfs -o size=%s: %v: %s", size, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return nil
}

// fillDisk writes a ballast file into dir until the file system refuses (ENOSPC), holds the
// disk full, then deletes the ballast. It returns what happened, for the report.
func fillDisk(dir string, hold time.Duration, c *harness.Collector) string {
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		return "ballast: " + err.Error()
	}
	chunk := make([]byte, 1<<20)
	var written int64
	for {
		n, err := f.Write(chunk)
		written += int64(n)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				_ = f.Close()
				_ = os.Remove(path)
				return fmt.Sprintf("ballast: %v after %d MB", err, written>>20)
			}
			break
		}
	}
	_ = f.Close()
	time.Sleep(hold)
	note := fmt.Sprintf("ballast %d MB held %s", written>>20, hold)
	if !c.Running() {
		note += "; the binary exited while the disk was full (" + firstLine(c.Proc.State()) + ")"
	}
	if err := os.Remove(path); err != nil {
		note += "; remove ballast: " + err.Error()
	}
	return note
}

// snapshot sums the attempts of every kind of stream by outcome.
func snapshot(w *workload.Workload) (out [6]int64) {
	for _, k := range workload.Kinds {
		for o := range out {
			out[o] += w.Counts[k].Attempts(workload.Outcome(o))
		}
	}
	return out
}

func delta(a, b [6]int64) (out [6]int64) {
	for i := range out {
		out[i] = b[i] - a[i]
	}
	return out
}

// waitRecovered waits until every stream has had a round acknowledged after the event (since
// its acknowledged rounds at the call), up to within; it returns the time since from, 0 when
// the load did not recover.
func waitRecovered(w *workload.Workload, from time.Time, within time.Duration) time.Duration {
	base := make([]int, len(w.Streams))
	for i, st := range w.Streams {
		base[i] = st.AckedRounds()
	}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		done := true
		for i, st := range w.Streams {
			if st.AckedRounds() == base[i] {
				done = false
			}
		}
		if done {
			return time.Since(from)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0
}

// stopFailure kills a process that did not stop cleanly and describes what happened: the
// failure and the last line of its output (the binary's own reason).
func stopFailure(c *harness.Collector, err error) string {
	c.Kill()
	msg := strings.TrimSuffix(firstLine(err.Error()), "; output:")
	return fmt.Sprintf("%s (%s); killed", msg, cut(lastLine(c.Proc.Output()), 160))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
