package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestDiskFull runs the binary on a 48 MiB tmpfs under remote write load until the disk is full
// and shows what the issue asked for: refused writes are answered 503 at once (not left to the
// sender's timeout) and stored nowhere, queries answer meanwhile with every acknowledged sample,
// the store says it refuses writes in its telemetry, writes succeed again once space comes back
// without a restart, and after a kill -9 while the disk is full every acknowledged sample is
// counted back exactly, nothing refused is.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root to mount a tmpfs of a fixed size (mount -t tmpfs -o size=48m); it runs in `make e2e` as root, as CI and this project's machines run it")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs here (%v: %s); it runs in `make e2e` as root where mount -t tmpfs is allowed (CI, a VM, a privileged container)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})

	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	dataDir := filepath.Join(mnt, "data")
	text, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	// The default reserve (min_free_space_mib: the smaller of 64 MiB and a quarter of the
	// filesystem) is what this test relies on: 12 MiB of 48.
	cfg := strings.Replace(string(text), "directory: ", "directory: "+fmt.Sprintf("%q", dataDir)+" # was ", 1)
	// The exporter's defaults (no sending queue, no retry_on_failure) pass a refusal straight
	// to the sender, whose own retries are the right ones: the test runs them unchanged.
	if err := os.WriteFile(configPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	proc := harness.StartReady(t, "metricstor (48 MiB tmpfs)", binary, configPath, ports)
	waitListening(t, proc, url)

	// Leave 24 MiB free (12 above the reserve): the load fills the rest, together with Pebble,
	// which preallocates each new write-ahead log file (1.1 x its 8 MiB memtable).
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	writeBallast(t, filepath.Join(mnt, "ballast1"), free-24<<20)

	ld := startDiskLoad(t, url)
	ld.waitRefused(t, "the load fills the disk to the reserve")
	// Fill the disk to the last byte: a store that refuses at the reserve must not recover by
	// itself now (its early checkpoint needs half the reserve free).
	fillDisk(t, filepath.Join(mnt, "ballast2"))
	ld.resetRefusals()
	ld.waitRefused(t, "the disk is full")
	time.Sleep(time.Second) // a second of refusals, all answered at once
	ld.checkRefusals(t)
	checkWritable(t, ports, 0)
	ld.checkQuery(t, ports, "while the disk is full") // queries answer, everything acknowledged is there

	// Space comes back: writes succeed again, without a restart.
	for _, b := range []string{"ballast1", "ballast2"} {
		if err := os.Remove(filepath.Join(mnt, b)); err != nil {
			t.Fatal(err)
		}
	}
	ld.waitAcked(t, 20, "space came back")
	checkWritable(t, ports, 1)
	ld.checkQuery(t, ports, "after space came back")

	// Full again, and killed right after.
	fillDisk(t, filepath.Join(mnt, "ballast3"))
	ld.resetRefusals()
	ld.waitRefused(t, "the disk is full again")
	ld.stop()
	ld.checkRefusals(t)
	proc.Kill()
	// The log says why, once per transition, not once per refused request.
	out := proc.Output()
	refusing, healed := strings.Count(out, "Storage is refusing writes"), strings.Count(out, "Storage accepts writes again")
	t.Logf("log: %d lines 'refusing writes', %d 'accepts writes again', for %d refused requests", refusing, healed, ld.refusedTotal.Load())
	if refusing < 2 || healed < 1 || refusing > 10 || !strings.Contains(out, "below the reserve") {
		t.Errorf("the log should tell each refusal and its reason once:\n%s", out)
	}
	if err := os.Remove(filepath.Join(mnt, "ballast3")); err != nil {
		t.Fatal(err)
	}
	proc = harness.StartReady(t, "metricstor (after kill -9 on a full disk)", binary, configPath, ports)
	ld.checkQuery(t, ports, "after kill -9 on a full disk and a restart")
	t.Logf("acknowledged rounds per sender %v, %d requests refused in all", ld.ackedCounts(), ld.refusedTotal.Load())
	proc.Stop(time.Minute)
}

const (
	diskSenders         = 4
	diskSeriesPerSender = 100
)

// diskLoad is remote write load as Prometheus senders make it: each sender pushes rounds of one
// sample per series and retries a refused round (5xx) until it is accepted.
type diskLoad struct {
	base     int64
	acked    [diskSenders]atomic.Int64
	quit     chan struct{}
	wg       sync.WaitGroup
	refused  atomic.Int64 // refusals since resetRefusals
	mu       sync.Mutex
	failures []string // answers that are neither 204 nor a prompt 5xx
	slowest  time.Duration
	statuses map[int]int

	refusedTotal atomic.Int64
}

func diskValue(sender, series, round int) float64 {
	return float64(sender*1_000_000+series*1000+round) + 0.25
}

func startDiskLoad(t *testing.T, url string) *diskLoad {
	ld := &diskLoad{base: time.Now().Add(-3 * time.Hour).Truncate(time.Second).UnixMilli(), quit: make(chan struct{}), statuses: map[int]int{}}
	// A client timeout far longer than the exporter's 5 s: a refusal must come from the server.
	client := &http.Client{Timeout: 30 * time.Second}
	for s := range diskSenders {
		ld.wg.Add(1)
		go func() {
			defer ld.wg.Done()
			for round := 0; ; {
				select {
				case <-ld.quit:
					return
				default:
				}
				var req prompb.WriteRequest
				for i := range diskSeriesPerSender {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels: []prompb.Label{
							{Name: "__name__", Value: "diskfull_value"},
							{Name: "sender", Value: fmt.Sprint(s)},
							{Name: "series", Value: fmt.Sprint(i)},
							{Name: "padding", Value: strings.Repeat("x", 40)},
						},
						Samples: []prompb.Sample{{Timestamp: ld.base + int64(round)*1000, Value: diskValue(s, i, round)}},
					})
				}
				msg, err := req.Marshal()
				if err != nil {
					ld.fail(err.Error())
					return
				}
				hreq, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, msg)))
				hreq.Header.Set("Content-Type", "application/x-protobuf")
				hreq.Header.Set("Content-Encoding", "snappy")
				start := time.Now()
				resp, err := client.Do(hreq)
				took := time.Since(start)
				if err != nil {
					select {
					case <-ld.quit:
						return // stopped
					default:
					}
					ld.fail(fmt.Sprintf("sender %d round %d: %v (after %v)", s, round, err, took))
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == http.StatusNoContent:
					round++
					ld.acked[s].Store(int64(round))
				case resp.StatusCode >= 500:
					ld.refused.Add(1)
					ld.refusedTotal.Add(1)
					ld.mu.Lock()
					ld.statuses[resp.StatusCode]++
					ld.slowest = max(ld.slowest, took)
					ld.mu.Unlock()
					time.Sleep(20 * time.Millisecond) // a sender's backoff, short
				default:
					ld.fail(fmt.Sprintf("sender %d round %d: %s: %s", s, round, resp.Status, body))
					return
				}
			}
		}()
	}
	return ld
}

func (ld *diskLoad) fail(msg string) {
	ld.mu.Lock()
	ld.failures = append(ld.failures, msg)
	ld.mu.Unlock()
}

func (ld *diskLoad) stop() {
	select {
	case <-ld.quit:
	default:
		close(ld.quit)
	}
	ld.wg.Wait()
}

func (ld *diskLoad) resetRefusals() { ld.refused.Store(0) }

func (ld *diskLoad) ackedCounts() []int64 {
	out := make([]int64, diskSenders)
	for s := range out {
		out[s] = ld.acked[s].Load()
	}
	return out
}

func (ld *diskLoad) checkFailures(t *testing.T) {
	t.Helper()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if len(ld.failures) > 0 {
		ld.stopLocked()
		t.Fatalf("remote write answers that are neither 204 nor 5xx: %v", ld.failures)
	}
}

func (ld *diskLoad) stopLocked() {
	select {
	case <-ld.quit:
	default:
		close(ld.quit)
	}
}

// waitRefused waits until at least one request per sender was refused.
func (ld *diskLoad) waitRefused(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for ld.refused.Load() < diskSenders {
		ld.checkFailures(t)
		if time.Now().After(deadline) {
			ld.stop()
			t.Fatalf("%s: no write refused after 3 minutes (acknowledged rounds %v)", what, ld.ackedCounts())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s: writes refused (acknowledged rounds %v)", what, ld.ackedCounts())
}

// waitAcked waits until every sender had n more rounds acknowledged.
func (ld *diskLoad) waitAcked(t *testing.T, n int64, what string) {
	t.Helper()
	from := ld.ackedCounts()
	deadline := time.Now().Add(3 * time.Minute)
	for s := range diskSenders {
		for ld.acked[s].Load() < from[s]+n {
			ld.checkFailures(t)
			if time.Now().After(deadline) {
				ld.stop()
				t.Fatalf("%s: sender %d had %d rounds acknowledged in 3 minutes, want %d more than %d", what, s, ld.acked[s].Load(), n, from[s])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// checkRefusals checks that the refused requests were answered by the server (5xx), each well
// before the client's timeout: the store refuses, it does not hang.
func (ld *diskLoad) checkRefusals(t *testing.T) {
	t.Helper()
	ld.checkFailures(t)
	ld.mu.Lock()
	defer ld.mu.Unlock()
	t.Logf("refusals so far: statuses %v, slowest answer %v", ld.statuses, ld.slowest)
	for code := range ld.statuses {
		if code != http.StatusServiceUnavailable {
			t.Errorf("a refused write was answered %d; remote write senders retry 503", code)
		}
	}
}

// checkQuery counts every series back through /api/v1/query: exactly the acknowledged rounds,
// with their values (count and sum over the whole range).
func (ld *diskLoad) checkQuery(t *testing.T, ports harness.Ports, when string) {
	t.Helper()
	api := newAPI(t, ports)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Snapshot what was acknowledged before and after the query: while the load runs, rounds
	// acknowledged meanwhile may or may not be in the answer.
	before := ld.ackedCounts()
	at := time.UnixMilli(ld.base + 100_000*1000)
	counts := map[string]float64{}
	sums := map[string]float64{}
	for q, into := range map[string]map[string]float64{
		`count_over_time(diskfull_value[2d])`: counts, `sum_over_time(diskfull_value[2d])`: sums,
	} {
		res, _, _, err := api.Query(ctx, q, at)
		if err != nil {
			t.Fatalf("%s: query %s: %s", when, q, apiError(err))
		}
		for _, s := range res.(model.Vector) {
			into[string(s.Metric["sender"])+"/"+string(s.Metric["series"])] = float64(s.Value)
		}
	}
	after := ld.ackedCounts()
	for s := range diskSenders {
		for i := range diskSeriesPerSender {
			key := fmt.Sprintf("%d/%d", s, i)
			n := int64(counts[key])
			if n < before[s] || n > after[s] {
				t.Fatalf("%s: sender %d series %d has %d samples, %d..%d acknowledged", when, s, i, n, before[s], after[s])
			}
			// The two queries ran one after the other while the load may go on: the sum must
			// be that of the first m rounds for some m acknowledged meanwhile (exactly n when
			// the load is stopped).
			ok, want := false, 0.0
			for r := range int(after[s]) {
				if int64(r) >= before[s] && sums[key] == want {
					ok = true
				}
				want += diskValue(s, i, r)
			}
			ok = ok || sums[key] == want
			if !ok {
				t.Fatalf("%s: sender %d series %d: sum of its samples is %v, not that of its first %d..%d rounds", when, s, i, sums[key], before[s], after[s])
			}
		}
	}
}

// checkWritable reads metricstor_storage_writable from the collector's own metrics.
func checkWritable(t *testing.T, ports harness.Ports, want int) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", harness.Addr(ports.Telemetry)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "metricstor_storage_writable") {
			fields := strings.Fields(line)
			if got := fields[len(fields)-1]; got != fmt.Sprint(want) {
				t.Fatalf("telemetry: %s, want %d", line, want)
			}
			return
		}
	}
	t.Fatalf("telemetry has no metricstor_storage_writable:\n%s", body)
}

// writeBallast writes a file of n bytes.
func writeBallast(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k, err := f.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			t.Fatal(err)
		}
		n -= int64(k)
	}
}

// fillDisk writes a file until the filesystem has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatal(err)
		}
	}
}
