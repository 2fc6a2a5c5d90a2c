package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
)

// Backups: Prometheus's snapshot admin endpoint through the built binary, and the restore path (a
// Metricstor started with the snapshot as its data directory).

// snapshotName matches Prometheus's snapshot names: <UTC time>-<16 hex digits>.
var snapshotName = regexp.MustCompile(`^\d{8}T\d{6}Z-[0-9a-f]{16}$`)

// httpDo sends method to u with an optional form body and returns the status and the body.
func httpDo(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return resp.StatusCode, string(b)
}

// takeSnapshot asks for a snapshot and returns its name, failing unless the answer is
// Prometheus's success.
func takeSnapshot(t *testing.T, base string) string {
	t.Helper()
	code, body := httpDo(t, http.MethodPost, base+"/api/v1/admin/tsdb/snapshot", nil)
	name, err := snapshotAnswer(code, body)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

func snapshotAnswer(code int, body string) (string, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &r) != nil || r.Status != "success" {
		return "", fmt.Errorf("snapshot: %d %s", code, body)
	}
	if !snapshotName.MatchString(r.Data.Name) {
		return "", fmt.Errorf("snapshot name %q is not Prometheus's <time>-<hex>", r.Data.Name)
	}
	return r.Data.Name, nil
}

// copyDir copies the regular files of src (hard links become copies) into dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

// answers are the raw JSON answers of a set of API requests.
type answers map[string]string

// backupQueries are the requests whose answers a restored snapshot must repeat: every raw sample
// of every series (floats, classic and native histograms), instant queries at several times, a
// range query, the series, label names and metadata.
func backupQueries(at time.Time) []string {
	ts := func(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }
	q := func(query string, t time.Time) string {
		return "/api/v1/query?" + url.Values{"query": {query}, "time": {ts(t)}}.Encode()
	}
	all := `{__name__=~"e2e_.+|backup_.+"}`
	return []string{
		q(all+`[1h]`, at.Add(time.Minute)),
		q(all, at),
		q(all, at.Add(-30*time.Second)),
		q(`sum by (__name__) (`+all+`)`, at),
		q(`rate(`+counterName+`[1m])`, at),
		q(`histogram_quantile(0.9, sum by (le) (rate(`+histName+`_bucket[1m])))`, at),
		"/api/v1/query_range?" + url.Values{"query": {all}, "start": {ts(at.Add(-10 * time.Minute))},
			"end": {ts(at.Add(time.Minute))}, "step": {"15"}}.Encode(),
		"/api/v1/series?" + url.Values{"match[]": {all}, "start": {ts(at.Add(-time.Hour))}, "end": {ts(at.Add(time.Hour))}}.Encode(),
		"/api/v1/labels",
		"/api/v1/metadata",
	}
}

func getAnswers(t *testing.T, base string, paths []string) answers {
	t.Helper()
	out := answers{}
	for _, p := range paths {
		code, body := httpDo(t, http.MethodGet, base+p, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		out[p] = body
	}
	return out
}

func checkSameAnswers(t *testing.T, what string, got, want answers) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: GET %s\n got  %s\n want %s", what, p, got[p], w)
		}
	}
}

// TestSnapshotRestore: data pushed through OTLP (every kind of metric) and remote write, a
// snapshot through the admin API, more data pushed; a second Metricstor started on a copy of
// the snapshot directory answers every query exactly as the original answered at snapshot time
// (and not as it answers now), while the original goes on with all its data, and a second
// snapshot with skip_head succeeds too.
func TestSnapshotRestore(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.PromQLYAML = "enable_admin_api: true"
	orig := harness.NewCollector(t, "metricstor (original)", binary, cfg)
	orig.Start()
	base := cfg.Ports.PromQLURL()

	f := newFixture("backup-1", startTime())
	pushSteps(t, pushGRPC, cfg.Ports, f, 0, 3)
	rwAt := f.at(2).UnixMilli()
	var req prompb.WriteRequest
	for i := range 20 {
		req.Timeseries = append(req.Timeseries, rwTimeseries(rwAt, float64(i)+0.5, "__name__", "backup_rw", "job", "rw", "i", fmt.Sprint(i)))
	}
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &req); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}
	queries := backupQueries(f.at(2))
	before := getAnswers(t, base, queries)
	if !strings.Contains(before[queries[0]], `"backup_rw"`) || !strings.Contains(before[queries[0]], `"`+expHistName+`"`) {
		t.Fatalf("the data to back up is not there: %s", before[queries[0]])
	}

	name := takeSnapshot(t, base)
	snapDir := filepath.Join(cfg.DataDir, "snapshots", name)
	if _, err := os.Stat(snapDir); err != nil {
		t.Fatalf("the snapshot is not where Prometheus puts it: %v", err)
	}
	atSnapshot := getAnswers(t, base, queries)
	checkSameAnswers(t, "original right after the snapshot", atSnapshot, before)

	// More data after the snapshot: new steps of the same series, a new remote write series.
	pushSteps(t, pushGRPC, cfg.Ports, f, 3, steps)
	req.Timeseries = []prompb.TimeSeries{rwTimeseries(f.at(3).UnixMilli(), 99, "__name__", "backup_rw_later", "job", "rw")}
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &req); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}
	now := getAnswers(t, base, queries)
	if now[queries[0]] == before[queries[0]] {
		t.Fatal("the data pushed after the snapshot does not show in the original")
	}

	// Restore: a second Metricstor on a copy of the snapshot, beside the running original.
	rcfg := harness.NewConfig(t)
	rcfg.PromQLYAML = "enable_admin_api: true"
	copyDir(t, snapDir, rcfg.DataDir)
	restored := harness.NewCollector(t, "metricstor (restored)", binary, rcfg)
	restored.Start()
	checkSameAnswers(t, "restored from the snapshot", getAnswers(t, rcfg.Ports.PromQLURL(), queries), before)

	// The restored store is a working store: it takes writes and snapshots of its own.
	pushSteps(t, pushGRPC, rcfg.Ports, f, 3, steps)
	takeSnapshot(t, rcfg.Ports.PromQLURL())
	restored.Stop(time.Minute)

	// skip_head: the snapshot is taken without blocking writes; it opens and holds at least
	// what was written out before the first snapshot (its checkpoint).
	code, body := httpDo(t, http.MethodPost, base+"/api/v1/admin/tsdb/snapshot?skip_head=true", nil)
	if _, err := snapshotAnswer(code, body); err != nil {
		t.Fatalf("skip_head: %v", err)
	}

	// The original, with its snapshots inside its data directory, restarts with all its data.
	orig.Stop(time.Minute)
	orig.Start()
	checkSameAnswers(t, "original after a restart", getAnswers(t, base, queries), now)
}

// TestAdminAPIDisabledAsPrometheus: without enable_admin_api the admin endpoints answer exactly as
// the reference Prometheus without --web.enable-admin-api, and no snapshot is written.
func TestAdminAPIDisabledAsPrometheus(t *testing.T) {
	binary := harness.Binary(t)
	prom := conformance.NewPrometheus(t, "prometheus (admin API off)", conformance.PrometheusBinary(t), "global:\n  scrape_interval: 1m\n")
	prom.Start(t)
	t.Cleanup(prom.Stop)
	cfg := harness.NewConfig(t)
	harness.NewCollector(t, "metricstor (admin API off)", binary, cfg).Start()

	for _, c := range []struct {
		method, path string
		form         url.Values
	}{
		{http.MethodPost, "/api/v1/admin/tsdb/snapshot", nil},
		{http.MethodPut, "/api/v1/admin/tsdb/snapshot", nil},
		{http.MethodPost, "/api/v1/admin/tsdb/delete_series", url.Values{"match[]": {"up"}}},
		{http.MethodPost, "/api/v1/admin/tsdb/clean_tombstones", nil},
	} {
		wantCode, want := httpDo(t, c.method, prom.URL()+c.path, c.form)
		gotCode, got := httpDo(t, c.method, cfg.Ports.PromQLURL()+c.path, c.form)
		if gotCode != wantCode || got != want {
			t.Errorf("%s %s: metricstor %d %s, prometheus %d %s", c.method, c.path, gotCode, got, wantCode, want)
		}
		if !strings.Contains(got, "admin APIs disabled") {
			t.Errorf("%s %s: %s does not say the admin APIs are disabled", c.method, c.path, got)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "snapshots")); !os.IsNotExist(err) {
		t.Errorf("a snapshot directory was created with the admin API off: %v", err)
	}
}

// TestAdminDeleteSeriesNotImplemented: with the admin API on, delete_series answers 501 with a
// message naming why, and the data is untouched; clean_tombstones answers 204 as Prometheus.
func TestAdminDeleteSeriesNotImplemented(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.PromQLYAML = "enable_admin_api: true"
	harness.NewCollector(t, "metricstor (admin API on)", binary, cfg).Start()
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{rwTimeseries(at.UnixMilli(), 3, "__name__", "backup_delete_me", "job", "rw")}}
	if code, body := rwSendV1(t, cfg.RemoteWriteURL(), &req); code != http.StatusNoContent {
		t.Fatalf("remote write: %d %s", code, body)
	}
	base := cfg.Ports.PromQLURL()
	code, body := httpDo(t, http.MethodPost, base+"/api/v1/admin/tsdb/delete_series", url.Values{"match[]": {"backup_delete_me"}})
	if code != http.StatusNotImplemented || !strings.Contains(body, `"errorType":"internal"`) ||
		!strings.Contains(body, "delete_series is not supported by metricstor: the store has no tombstones") {
		t.Errorf("delete_series: %d %s, want 501 naming why", code, body)
	}
	if got := instantVector(t, cfg.Ports, "backup_delete_me", at); got[`backup_delete_me{job="rw"}`] != 3 {
		t.Errorf("the data after delete_series: %v", got)
	}
	code, body = httpDo(t, http.MethodPost, base+"/api/v1/admin/tsdb/delete_series", nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "no match[] parameter provided") {
		t.Errorf("delete_series without match[]: %d %s, want Prometheus's 400", code, body)
	}
	if code, body = httpDo(t, http.MethodPost, base+"/api/v1/admin/tsdb/clean_tombstones", nil); code != http.StatusNoContent {
		t.Errorf("clean_tombstones: %d %s, want 204", code, body)
	}
}

// TestSnapshotKillUnderLoad: remote write senders push rounds as fast as they are acknowledged
// while snapshots are taken one after the other, and the original is killed (kill -9) during
// one. Every snapshot whose call returned success opens in a Metricstor of its own, and is
// consistent: every series of a sender holds the same rounds 0..n-1 (a request is one commit),
// with n at least the rounds acknowledged before the snapshot was asked for and at most those
// sent before it was answered.
func TestSnapshotKillUnderLoad(t *testing.T) {
	const (
		senders         = 3
		seriesPerSender = 200
	)
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.PromQLYAML = "enable_admin_api: true"
	orig := harness.NewCollector(t, "metricstor (snapshots under load)", binary, cfg)
	orig.Start()
	rwURL, base := cfg.RemoteWriteURL(), cfg.Ports.PromQLURL()

	start := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	var acked, begun [senders]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for s := range senders {
		wg.Go(func() {
			for round := int64(0); ; round++ {
				select {
				case <-stop:
					return
				default:
				}
				var req prompb.WriteRequest
				for i := range seriesPerSender {
					req.Timeseries = append(req.Timeseries, rwTimeseries(start+round*1000, float64(round),
						"__name__", "backup_load", "sender", fmt.Sprint(s), "series", fmt.Sprint(i)))
				}
				msg, err := req.Marshal()
				if err != nil {
					t.Error(err)
					return
				}
				hreq, _ := http.NewRequest(http.MethodPost, rwURL, bytes.NewReader(snappy.Encode(nil, msg)))
				hreq.Header.Set("Content-Type", "application/x-protobuf")
				hreq.Header.Set("Content-Encoding", "snappy")
				begun[s].Store(round + 1)
				resp, err := client.Do(hreq)
				if err != nil {
					return // killed
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("sender %d round %d: %s", s, round, resp.Status)
					return
				}
				acked[s].Store(round + 1)
			}
		})
	}

	type taken struct {
		name      string
		low, high [senders]int64
		took      time.Duration // measured, not asserted
	}
	var (
		mu   sync.Mutex
		done []taken
		sent atomic.Int64
	)
	var snapWG sync.WaitGroup
	snapWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var tk taken
			for s := range senders {
				tk.low[s] = acked[s].Load()
			}
			sent.Add(1)
			asked := time.Now()
			resp, err := client.Post(base+"/api/v1/admin/tsdb/snapshot", "", nil)
			if err != nil {
				return // killed during this snapshot
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			name, err := snapshotAnswer(resp.StatusCode, string(b))
			if err != nil {
				t.Error(err)
				return
			}
			for s := range senders {
				tk.high[s] = begun[s].Load()
			}
			tk.name = name
			tk.took = time.Since(asked)
			mu.Lock()
			done = append(done, tk)
			mu.Unlock()
		}
	})

	// Kill once a few snapshots are done under load and the series have cut chunks (at 120
	// samples), while the next snapshot is being taken.
	waitFor(t, "three snapshots under load", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) >= 3 && acked[0].Load() > 150
	})
	orig.Kill()
	close(stop)
	wg.Wait()
	snapWG.Wait()
	mu.Lock()
	defer mu.Unlock()
	took := make([]time.Duration, len(done))
	for i, tk := range done {
		took[i] = tk.took
	}
	slices.Sort(took)
	t.Logf("%d snapshots answered, %d asked for (answered in %v median, %v max); rounds acknowledged per sender at the kill: %d %d %d",
		len(done), sent.Load(), took[len(took)/2], took[len(took)-1], acked[0].Load(), acked[1].Load(), acked[2].Load())

	// The first and the last answered snapshots, each in a Metricstor of its own.
	check := []taken{done[0], done[len(done)-1]}
	for _, tk := range check {
		rcfg := harness.NewConfig(t)
		copyDir(t, filepath.Join(cfg.DataDir, "snapshots", tk.name), rcfg.DataDir)
		r := harness.NewCollector(t, "metricstor (restored "+tk.name+")", binary, rcfg)
		r.Start()
		end := time.UnixMilli(start + 10_000_000)
		res, _, _, err := newAPI(t, rcfg.Ports).Query(queryCtx(t), `count_over_time(backup_load[3h])`, end)
		if err != nil {
			t.Fatalf("snapshot %s: %s", tk.name, apiError(err))
		}
		counts := map[string]map[int64]int{} // sender -> rounds -> series with that many
		for _, s := range vectorOf(t, "count_over_time", res) {
			sender := string(s.Metric["sender"])
			if counts[sender] == nil {
				counts[sender] = map[int64]int{}
			}
			counts[sender][int64(s.Value)]++
		}
		for s := range senders {
			c := counts[fmt.Sprint(s)]
			if tk.low[s] == 0 && len(c) == 0 {
				continue // nothing of this sender acknowledged yet
			}
			if len(c) != 1 {
				t.Errorf("snapshot %s sender %d: series hold different numbers of rounds (rounds: series) %v: a request was cut in two", tk.name, s, c)
				continue
			}
			for n, series := range c {
				if series != seriesPerSender {
					t.Errorf("snapshot %s sender %d: %d of %d series", tk.name, s, series, seriesPerSender)
				}
				if n < tk.low[s] || n > tk.high[s] {
					t.Errorf("snapshot %s sender %d: %d rounds, want between %d (acknowledged before) and %d (sent before the answer)", tk.name, s, n, tk.low[s], tk.high[s])
				}
			}
		}
		r.Stop(time.Minute)
	}

	// The original restarts after the kill, the snapshot it was taking (maybe incomplete) inside
	// its data directory, with every acknowledged round.
	orig.Start()
	res, _, _, err := newAPI(t, cfg.Ports).Query(queryCtx(t), `min by (sender) (count_over_time(backup_load[3h]))`, time.UnixMilli(start+10_000_000))
	if err != nil {
		t.Fatalf("original after the kill: %s", apiError(err))
	}
	for _, s := range vectorOf(t, "min by (sender)", res) {
		var n int
		fmt.Sscan(string(s.Metric["sender"]), &n)
		if int64(s.Value) < acked[n].Load() {
			t.Errorf("original after the kill: sender %d has %v rounds in every series, %d were acknowledged", n, s.Value, acked[n].Load())
		}
	}
}
