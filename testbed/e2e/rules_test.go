package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/conformance"
	"github.com/metricstor/metricstor/testbed/harness"
)

// AlertmanagerEnv names the environment variable that overrides the path of the Alertmanager
// binary; by default it is the one testbed/scripts/install-alertmanager.sh builds.
const AlertmanagerEnv = "ALERTMANAGER_BINARY"

const alertmanagerVersion = "v0.35.0"

func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	path := os.Getenv(AlertmanagerEnv)
	if path == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(root, "bin", "tools", "alertmanager-"+alertmanagerVersion, "alertmanager")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("alertmanager binary not found (%v): run testbed/scripts/install-alertmanager.sh, or set %s", err, AlertmanagerEnv)
	}
	return path
}

// e2eRules is loaded, from the same file, by the reference Prometheus and by Metricstor.
const e2eRules = `groups:
  - name: demo
    rules:
      - record: job:demo_value:sum
        expr: sum by (job) (demo_value)
      - record: instance:demo_value:doubled
        expr: demo_value * 2
        labels:
          source: rule
      - alert: DemoHigh
        expr: demo_value > 5
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is at {{ $value }}"
          cluster: "{{ $externalLabels.cluster }}"
      - alert: DemoAboveTwo
        expr: demo_value > 2
        for: 1h
        labels:
          severity: ticket
        annotations:
          summary: "{{ $labels.instance }} has been above two"
`

// webhook records the notifications the Alertmanager sends to its webhook receiver.
type webhook struct {
	mu   sync.Mutex
	msgs []webhookMsg
	srv  *httptest.Server
}

type webhookMsg struct {
	Status string `json:"status"`
	Alerts []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
	} `json:"alerts"`
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m webhookMsg
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, m)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// statuses returns the status of each notification of the alert named alertname, in order.
func (w *webhook) statuses(alertname string) ([]string, []webhookMsg) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	var msgs []webhookMsg
	for _, m := range w.msgs {
		for _, a := range m.Alerts {
			if a.Labels["alertname"] == alertname {
				out = append(out, a.Status)
				msgs = append(msgs, m)
			}
		}
	}
	return out, msgs
}

// startAlertmanager runs a real Alertmanager that notifies hook of every alert group at once
// and of its resolution.
func startAlertmanager(t *testing.T, hook string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hook)
	path := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := harness.FreePorts(t, 1)[0]
	proc := harness.Start(t, "alertmanager", alertmanagerBinary(t),
		"--config.file="+path,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+harness.Addr(port),
		"--cluster.listen-address=", // no gossip: a single instance
		"--log.level=warn")
	base := "http://" + harness.Addr(port)
	proc.WaitFor(time.Minute, harness.HTTPProbe(base+"/-/ready"))
	t.Cleanup(func() { proc.Stop(30 * time.Second) })
	return base
}

// apiGet GETs a Prometheus API path and returns its `data`.
func apiGet(t *testing.T, base, path string) any {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", base, path, resp.StatusCode, b)
	}
	var r struct {
		Status string `json:"status"`
		Data   any    `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("GET %s%s: %v: %s", base, path, err, b)
	}
	return r.Data
}

// volatile are the keys of /api/v1/rules and /api/v1/alerts that depend on when each server
// evaluated (not on what): they are left out of the comparison.
var volatile = map[string]bool{"lastEvaluation": true, "evaluationTime": true, "activeAt": true}

func stripVolatile(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if !volatile[k] {
				out[k] = stripVolatile(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = stripVolatile(e)
		}
		// Alerts come in map order; sort them by their JSON.
		sort.Slice(out, func(i, j int) bool { return jsonString(out[i]) < jsonString(out[j]) })
		return out
	}
	return v
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// ruleState is /api/v1/rules and /api/v1/alerts of a server, without the evaluation times.
func ruleState(t *testing.T, base string) (rules, alerts string) {
	return jsonString(stripVolatile(apiGet(t, base, "/api/v1/rules"))),
		jsonString(stripVolatile(apiGet(t, base, "/api/v1/alerts")))
}

// queryResult is an instant query's result without sample timestamps (each server evaluated
// its rules at its own times), as sorted "labels value" lines.
func queryResult(t *testing.T, base, q string) []string {
	d := apiGet(t, base, "/api/v1/query?query="+url.QueryEscape(q)).(map[string]any)
	var out []string
	for _, s := range d["result"].([]any) {
		m := s.(map[string]any)
		out = append(out, jsonString(m["metric"])+" "+m["value"].([]any)[1].(string))
	}
	sort.Strings(out)
	return out
}

// waitSame waits until cond holds and the reference and Metricstor give the same rule state and
// the same recording rule series, and fails with the last difference.
func waitSame(t *testing.T, ref, ms, what string, cond func(alertsJSON string) bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var diff string
	for time.Now().Before(deadline) {
		rr, ra := ruleState(t, ref)
		mr, ma := ruleState(t, ms)
		diff = ""
		switch {
		case !cond(ra):
			diff = "reference not there yet: " + ra
		case ra != ma:
			diff = fmt.Sprintf("/api/v1/alerts differ:\nreference  %s\nmetricstor %s", ra, ma)
		case rr != mr:
			diff = fmt.Sprintf("/api/v1/rules differ:\nreference  %s\nmetricstor %s", rr, mr)
		}
		for _, q := range []string{"job:demo_value:sum", "instance:demo_value:doubled", "ALERTS", "ALERTS_FOR_STATE > 0"} {
			if diff != "" {
				break
			}
			rq, mq := queryResult(t, ref, q), queryResult(t, ms, q)
			if q == "ALERTS_FOR_STATE > 0" {
				// Its value is the time each server first saw the alert: compare only the series.
				rq, mq = seriesOnly(rq), seriesOnly(mq)
			}
			if len(rq) == 0 || !reflect.DeepEqual(rq, mq) {
				diff = fmt.Sprintf("%s differs:\nreference  %v\nmetricstor %v", q, rq, mq)
			}
		}
		if diff == "" {
			t.Logf("%s: same rules, alerts and recorded series:\n%s", what, ma)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, diff)
}

func seriesOnly(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l[:strings.LastIndex(l, " ")]
	}
	return out
}

// TestRulesMatchPrometheus loads one rule file into a reference Prometheus and into Metricstor,
// pushes the same samples to both through remote write, and checks that both record the same
// series and report the same rules and alerts (state, labels, annotations, values) from
// /api/v1/rules and /api/v1/alerts; that a real Alertmanager receives Metricstor's alert, with
// the external labels and a generatorURL on Metricstor's query API, and then its resolution;
// and that after a kill -9 the recorded series are still there and evaluation goes on.
func TestRulesMatchPrometheus(t *testing.T) {
	binary := harness.Binary(t)
	promBinary := conformance.PrometheusBinary(t)
	hook := newWebhook(t)
	am := startAlertmanager(t, hook.srv.URL)

	dir := t.TempDir()
	rulePath := filepath.Join(dir, "demo.rules.yml")
	if err := os.WriteFile(rulePath, []byte(e2eRules), 0o600); err != nil {
		t.Fatal(err)
	}

	ref := conformance.NewPrometheus(t, "prometheus (reference)", promBinary, fmt.Sprintf(
		"global:\n  evaluation_interval: 1s\n  external_labels:\n    cluster: e2e\nrule_files: [%q]\n", rulePath),
		"--web.enable-remote-write-receiver", "--web.enable-lifecycle")
	ref.Start(t)
	t.Cleanup(ref.Stop)

	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	cfg.RulesYAML = fmt.Sprintf("rule_files: [%q]\nevaluation_interval: 1s\nfile_check_interval: 1s\nexternal_labels:\n  cluster: e2e\nalertmanagers: [%q]\n", rulePath, am)
	col := harness.NewCollector(t, "metricstor (rules)", binary, cfg)
	col.Start()
	ms := cfg.Ports.PromQLURL()
	msWrite := cfg.RemoteWriteURL()
	waitListening(t, col.Proc, msWrite)

	push := func(values map[string]float64) {
		t.Helper()
		ts := time.Now().UnixMilli()
		var req prompb.WriteRequest
		for inst, v := range values {
			req.Timeseries = append(req.Timeseries, rwTimeseries(ts, v, "__name__", "demo_value", "job", "demo", "instance", inst))
		}
		for _, u := range []string{ref.URL() + "/api/v1/write", msWrite} {
			if code, body := rwSendV1(t, u, &req); code != http.StatusNoContent {
				t.Fatalf("remote write to %s: %d %s", u, code, body)
			}
		}
	}

	push(map[string]float64{"a": 7, "b": 3, "c": 1})
	waitSame(t, ref.URL(), ms, "a and b above two, a above five", func(a string) bool {
		return strings.Count(a, `"state":"pending"`) == 2 && strings.Count(a, `"state":"firing"`) == 1
	})

	// The Alertmanager got Metricstor's alert (the reference sends to no Alertmanager).
	waitFor(t, "the Alertmanager notifies DemoHigh firing", func() bool {
		st, _ := hook.statuses("DemoHigh")
		return len(st) > 0 && st[0] == "firing"
	})
	_, msgs := hook.statuses("DemoHigh")
	got := msgs[0].Alerts[0]
	wantLabels := map[string]string{"alertname": "DemoHigh", "job": "demo", "instance": "a", "severity": "page", "cluster": "e2e"}
	if !reflect.DeepEqual(got.Labels, wantLabels) {
		t.Errorf("alert labels at the Alertmanager: %v, want %v", got.Labels, wantLabels)
	}
	wantAnn := map[string]string{"summary": "a of demo is at 7", "cluster": "e2e"}
	if !reflect.DeepEqual(got.Annotations, wantAnn) {
		t.Errorf("alert annotations at the Alertmanager: %v, want %v", got.Annotations, wantAnn)
	}
	if !strings.HasPrefix(got.GeneratorURL, ms+"/graph?g0.expr=") {
		t.Errorf("generatorURL %q does not point at Metricstor's query API %s", got.GeneratorURL, ms)
	}
	if _, st := hook.statuses("DemoAboveTwo"); len(st) != 0 {
		t.Errorf("a pending alert was notified: %v", st)
	}
	// /api/v1/alertmanagers names it.
	ams := jsonString(apiGet(t, ms, "/api/v1/alertmanagers"))
	if !strings.Contains(ams, am+"/api/v2/alerts") {
		t.Errorf("/api/v1/alertmanagers: %s, want %s/api/v2/alerts", ams, am)
	}

	// a falls back to one: DemoHigh resolves, a's DemoAboveTwo is gone, b's stays pending.
	push(map[string]float64{"a": 1, "b": 3, "c": 1})
	waitSame(t, ref.URL(), ms, "a back to one", func(a string) bool {
		return strings.Count(a, `"state":"pending"`) == 1 && !strings.Contains(a, `"state":"firing"`)
	})
	waitFor(t, "the Alertmanager notifies DemoHigh resolved", func() bool {
		st, _ := hook.statuses("DemoHigh")
		return len(st) > 0 && st[len(st)-1] == "resolved"
	})

	// The rule file changes: the reference reloads it (POST /-/reload, as on SIGHUP), Metricstor
	// sees the change by itself (file_check_interval). Then Metricstor gets a SIGHUP (the collector
	// restarts its components): the rules and alerts are still the reference's.
	changed := strings.Replace(e2eRules, "    rules:\n", "    rules:\n      - record: demo:count\n        expr: count(demo_value)\n", 1)
	if err := os.WriteFile(rulePath, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(ref.URL()+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reload the reference: %v %v", err, resp)
	}
	resp.Body.Close()
	waitSame(t, ref.URL(), ms, "rule file changed", func(string) bool {
		r, _ := ruleState(t, ref.URL())
		return strings.Contains(r, `"name":"demo:count"`) && len(queryResult(t, ms, "demo:count")) == 1 &&
			reflect.DeepEqual(queryResult(t, ms, "demo:count"), queryResult(t, ref.URL(), "demo:count"))
	})
	const readyLine = "Everything is ready."
	readyBefore := strings.Count(col.Proc.Output(), readyLine)
	if err := syscall.Kill(col.Proc.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The collector logs readyLine again once it has restarted every component on SIGHUP.
	waitFor(t, "the collector restarted on SIGHUP", func() bool {
		return strings.Count(col.Proc.Output(), readyLine) > readyBefore
	})
	waitSame(t, ref.URL(), ms, "after SIGHUP", func(string) bool { return true })

	// kill -9: the recorded series survive, and after the restart evaluation goes on with the
	// same result as the reference.
	before := recordedSamples(t, ms)
	pendingSince := activeAt(t, ms, "DemoAboveTwo", "b")
	col.Kill()
	restartAt := time.Now()
	col.Start()
	if after := recordedSamples(t, ms); before == 0 || after < before {
		t.Errorf("recorded samples of job:demo_value:sum: %d before kill -9, %d after the restart", before, after)
	} else {
		t.Logf("recorded samples of job:demo_value:sum: %d before kill -9, %d after the restart", before, after)
	}
	push(map[string]float64{"a": 9, "b": 3, "c": 1})
	waitSame(t, ref.URL(), ms, "after kill -9 and restart, a above five again", func(a string) bool {
		return strings.Count(a, `"state":"pending"`) == 2 && strings.Count(a, `"state":"firing"`) == 1 &&
			strings.Contains(a, `"value":"9`)
	})
	// The `for` state of b's pending alert was restored from ALERTS_FOR_STATE: it is pending since
	// before the kill, not since the restart.
	if restored := activeAt(t, ms, "DemoAboveTwo", "b"); !restored.Before(restartAt) {
		t.Errorf("pending alert active since %s after the restart at %s (was %s before kill -9): for state not restored",
			restored, restartAt, pendingSince)
	}
	// A clean stop (the notifier drains its queue to the Alertmanager) within the harness's bound.
	col.Stop(time.Minute)
}

// activeAt is the activeAt of the alert alertname of instance in /api/v1/alerts.
func activeAt(t *testing.T, base, alertname, instance string) time.Time {
	t.Helper()
	for _, a := range apiGet(t, base, "/api/v1/alerts").(map[string]any)["alerts"].([]any) {
		m := a.(map[string]any)
		ls := m["labels"].(map[string]any)
		if ls["alertname"] == alertname && ls["instance"] == instance {
			at, err := time.Parse(time.RFC3339Nano, m["activeAt"].(string))
			if err != nil {
				t.Fatal(err)
			}
			return at
		}
	}
	t.Fatalf("no alert %s for %s in /api/v1/alerts", alertname, instance)
	return time.Time{}
}

// recordedSamples is how many samples of the recording rule job:demo_value:sum the store holds.
func recordedSamples(t *testing.T, base string) int {
	t.Helper()
	res := queryResult(t, base, "count_over_time(job:demo_value:sum[1h])")
	if len(res) != 1 {
		t.Fatalf("count_over_time(job:demo_value:sum[1h]): %v", res)
	}
	var n int
	if _, err := fmt.Sscan(res[0][strings.LastIndex(res[0], " ")+1:], &n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRulesInvalidFile: the binary refuses to start on a rule file that does not parse, with
// Prometheus's error naming the file and the rule, as Prometheus refuses to start.
func TestRulesInvalidFile(t *testing.T) {
	binary := harness.Binary(t)
	path := filepath.Join(t.TempDir(), "bad.rules.yml")
	if err := os.WriteFile(path, []byte("groups:\n  - name: g\n    rules:\n      - record: broken_rule\n        expr: sum(rate(x[5m])\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := harness.NewConfig(t)
	cfg.RulesYAML = fmt.Sprintf("rule_files: [%q]\n", path)
	code, out := harness.RunToExit(t, binary, time.Minute, "--config", cfg.Write(t))
	if code == 0 {
		t.Fatalf("started on an invalid rule file:\n%s", out)
	}
	for _, want := range []string{"rules: rule_files: ", path, "broken_rule"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not name %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "rules: rule_files: ") {
			t.Logf("exit code %d: %s", code, l)
		}
	}
}
