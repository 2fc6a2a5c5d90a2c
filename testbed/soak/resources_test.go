package soak

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/metricstor/metricstor/testbed/harness"
)

// current is the process the sampler reads, swapped by the event loop at each start.
type current struct {
	proc    *harness.Process
	started time.Time
}

// reading is one sample of the binary's resources.
type reading struct {
	at         time.Duration // since the start of the soak
	age        time.Duration // since the start of the process
	rss, hwm   int64         // bytes, VmRSS and VmHWM
	fds        int           // open file descriptors
	goroutines int           // from /api/v1/status/runtimeinfo; -1 when it did not answer
}

// warmAfter: readings of a process younger than this are left out of the comparison (a
// process that just started has not grown its caches yet).
const warmAfter = 15 * time.Second

type sampler struct {
	mu       sync.Mutex
	readings []reading
	misses   int // readings not taken: no process, or /proc not readable
}

// startSampler reads the current process every `every` until ctx is done; wait waits for it.
func startSampler(ctx context.Context, cur *atomic.Pointer[current], api promv1.API, soakStart time.Time, every time.Duration) (*sampler, func()) {
	s := &sampler{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			c := cur.Load()
			if c == nil || c.proc.Exited() {
				s.miss()
				continue
			}
			pid := c.proc.Pid()
			r := reading{at: time.Since(soakStart), age: time.Since(c.started), goroutines: -1}
			var err1, err2, err3 error
			r.rss, err1 = harness.StatusKB(pid, "VmRSS")
			r.hwm, err2 = harness.StatusKB(pid, "VmHWM")
			r.fds, err3 = harness.OpenFiles(pid)
			if err1 != nil || err2 != nil || err3 != nil || c.proc.Exited() {
				s.miss()
				continue
			}
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if info, err := api.Runtimeinfo(qctx); err == nil {
				r.goroutines = info.GoroutineCount
			}
			cancel()
			s.mu.Lock()
			s.readings = append(s.readings, r)
			s.mu.Unlock()
		}
	}()
	return s, func() { <-done }
}

func (s *sampler) miss() {
	s.mu.Lock()
	s.misses++
	s.mu.Unlock()
}

// trend compares one resource between the middle and the last third of the soak.
type trend struct {
	name             string
	middle, last     float64 // the statistic of each third
	stat             string  // "median" or "max"
	unit             string
	flat             bool
	nMiddle, nLast   int
	tolerance, slack float64 // flat: last <= middle*tolerance + slack
}

// trends compares the warm readings of the middle third of the soak with those of the last.
func (s *sampler) trends(duration time.Duration) []trend {
	s.mu.Lock()
	defer s.mu.Unlock()
	var middle, last []reading
	for _, r := range s.readings {
		if r.age < warmAfter {
			continue
		}
		switch {
		case r.at >= 2*duration/3:
			last = append(last, r)
		case r.at >= duration/3:
			middle = append(middle, r)
		}
	}
	mk := func(name, stat, unit string, tolerance, slack float64, get func(reading) float64) trend {
		tr := trend{name: name, stat: stat, unit: unit, tolerance: tolerance, slack: slack, nMiddle: len(middle), nLast: len(last)}
		tr.middle, tr.last = statistic(middle, stat, get), statistic(last, stat, get)
		tr.flat = len(middle) > 0 && len(last) > 0 && tr.last <= tr.middle*tolerance+slack
		return tr
	}
	var withG []reading
	for _, r := range s.readings {
		if r.goroutines >= 0 {
			withG = append(withG, r)
		}
	}
	return []trend{
		mk("RSS (VmRSS)", "median", "MB", 1.3, 0, func(r reading) float64 { return float64(r.rss) / 1e6 }),
		mk("RSS (VmRSS)", "max", "MB", 1.3, 0, func(r reading) float64 { return float64(r.rss) / 1e6 }),
		mk("peak RSS (VmHWM)", "max", "MB", 1.3, 0, func(r reading) float64 { return float64(r.hwm) / 1e6 }),
		mk("goroutines", "median", "", 1.2, 10, func(r reading) float64 { return float64(max(r.goroutines, 0)) }),
		mk("goroutines", "max", "", 1.2, 10, func(r reading) float64 { return float64(max(r.goroutines, 0)) }),
		mk("open files", "max", "", 1.2, 10, func(r reading) float64 { return float64(r.fds) }),
	}
}

func statistic(rs []reading, stat string, get func(reading) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = get(r)
	}
	slices.Sort(vs)
	if stat == "max" {
		return vs[len(vs)-1]
	}
	return vs[len(vs)/2]
}

func (tr trend) String() string {
	return fmt.Sprintf("%s %s: %.1f -> %.1f %s", tr.name, tr.stat, tr.middle, tr.last, tr.unit)
}
