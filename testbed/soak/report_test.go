package soak

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/metricstor/metricstor/testbed/workload"
)

// report renders the summary of a soak as tables.
func report(s settings, elapsed time.Duration, notes []string, w *workload.Workload, qs *querierStats, events []event,
	rep workload.Report, trends []trend, smp *sampler) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nSoak of otelcol-metricstor: %s (SOAK_DURATION=%s), an event every %s, %d CPUs, load average %s\n",
		elapsed.Round(time.Second), s.duration, s.eventEvery, runtime.NumCPU(), loadavg())
	fmt.Fprintf(&b, "load: 2 remote write streams (%d series), 1 OTLP gRPC + 1 OTLP HTTP stream (%d series each), a round per stream every %s at most; 2 PromQL queriers\n",
		s.rwSeries, 2*s.otlpSeries, s.pace)
	if s.diskFull {
		fmt.Fprintf(&b, "disk full: data directory on a tmpfs of %s, filled by a ballast file until ENOSPC, held %s, ballast deleted\n", s.tmpfsSize, s.hold)
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}

	b.WriteString("\nWrites (attempts by outcome; a refused, timed out or failed request is sent again)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tacked\trefused (5xx/429)\trejected (4xx)\ttimeouts\tno server\tsamples acked\tacked, read back\tlost\twrong\t")
	byKind := map[string]*workload.StreamReport{}
	for _, sr := range rep.Streams {
		k := byKind[sr.Kind]
		if k == nil {
			k = &workload.StreamReport{Kind: sr.Kind}
			byKind[sr.Kind] = k
		}
		k.Acked += sr.Acked
		k.Found += sr.Found
		k.Missing += sr.Missing
		k.Wrong += sr.Wrong
	}
	for _, kind := range workload.Kinds {
		c := w.Counts[kind]
		k := byKind[kind]
		if k == nil {
			k = &workload.StreamReport{}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", kind,
			c.Attempts(workload.Acked), c.Attempts(workload.Refused), c.Attempts(workload.Rejected),
			c.Attempts(workload.Timeout), c.Attempts(workload.Down), k.Acked, k.Found, k.Missing, k.Wrong)
	}
	_ = tw.Flush()
	fmt.Fprintf(&b, "acknowledged samples lost: %d; samples of unacknowledged requests read back (allowed): %d\n", rep.Lost(), rep.Unacked())

	b.WriteString("\nQueries\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "answered\tfailed\tno server\tp50\tp99\tlast failure\t")
	qs.mu.Lock()
	ok, fail, down, lastErr := qs.ok, qs.fail, qs.down, qs.lastErr
	qs.mu.Unlock()
	fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t\n", ok, fail, down, qs.latency(0.5).Round(time.Millisecond), qs.latency(0.99).Round(time.Millisecond), cut(lastErr, 80))
	_ = tw.Flush()

	b.WriteString("\nEvents (attempts from the event until every stream had a round acknowledged again)\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "at\tevent\tready\twrites again after\tacked\trefused\trejected\ttimeouts\tno server\tnote\t")
	for _, ev := range events {
		ready, rec := "-", "-"
		if ev.ready > 0 {
			ready = ev.ready.Round(10 * time.Millisecond).String()
		}
		if ev.recovered > 0 {
			rec = ev.recovered.Round(10 * time.Millisecond).String()
		} else if ev.kind != evFinal {
			rec = "NOT within " + recoverWithin.String()
		}
		a := ev.attempts
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t\n", ev.at.Round(time.Second), ev.kind, ready, rec,
			a[workload.Acked], a[workload.Refused], a[workload.Rejected], a[workload.Timeout], a[workload.Down], cut(ev.note, 100))
	}
	_ = tw.Flush()

	smp.mu.Lock()
	n, misses := len(smp.readings), smp.misses
	smp.mu.Unlock()
	fmt.Fprintf(&b, "\nResources of the binary: middle third vs last third of the soak (%d readings every 2 s, %d not taken while no process ran; readings within %s of a start left out)\n",
		n, misses, warmAfter)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "resource\tstatistic\tmiddle\tlast\tlast/middle\tflat (last <= middle×tol + slack)\t")
	for _, tr := range trends {
		ratio := "-"
		if tr.middle > 0 {
			ratio = fmt.Sprintf("%.2f", tr.last/tr.middle)
		}
		flat := "yes"
		if !tr.flat {
			flat = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f %s\t%.1f %s\t%s\t%s (×%.2f + %.0f)\t\n", tr.name, tr.stat, tr.middle, tr.unit, tr.last, tr.unit, ratio, flat, tr.tolerance, tr.slack)
	}
	_ = tw.Flush()
	return b.String()
}

func cut(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
