// Package ui tests the query page of the promql extension in a real browser (Chromium, driven
// with chromedp) against the built binary, with data pushed by remote write first. It is its own
// package so that its time shows apart from the other end-to-end tests.
package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/loadgen"
)

// ChromiumEnv overrides the browser; else `chromium` on PATH (testbed/scripts/install-chromium.sh).
const ChromiumEnv = "CHROMIUM"

// The pushed data: 2 hosts x 100 node-exporter-like series, 40 samples 15 s apart, the last now.
const (
	hosts   = 2
	samples = 40
	// cpuQuery selects the 8 modes of one CPU of one host.
	cpuQuery = `node_cpu_seconds_total{instance="host-00000:9100",cpu="0"}`
)

func chromium(t *testing.T) string {
	if p := os.Getenv(ChromiumEnv); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		// The machine lacks the browser; `make ui-test` installs it first.
		t.Skipf("skipped: no chromium on PATH and %s unset; it runs in `make e2e` and `make ui-test`, which install chromium first (testbed/scripts/install-chromium.sh)", ChromiumEnv)
	}
	return p
}

// screenshotDir is where the screenshots go: $METRICSTOR_ARTIFACTS/ui-screenshots, else
// <repo>/bin/ui-screenshots.
func screenshotDir(t *testing.T) string {
	base := os.Getenv("METRICSTOR_ARTIFACTS")
	if base == "" {
		root, err := harness.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(root, "bin")
	}
	dir := filepath.Join(base, "ui-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// apiResult is the part of an API answer the test compares.
type apiResult struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Infos     []string `json:"infos"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric    map[string]string `json:"metric"`
			Value     [2]any            `json:"value"`
			Histogram [2]any            `json:"histogram"`
			Values    [][2]any          `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

func apiQuery(t *testing.T, base, path string, params url.Values) apiResult {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/" + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r apiResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return r
}

// tsdbStatus is /api/v1/status/tsdb's data, in Prometheus's field names.
type tsdbStatus struct {
	HeadStats struct {
		NumSeries uint64 `json:"numSeries"`
	} `json:"headStats"`
	SeriesCountByMetricName []struct {
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	} `json:"seriesCountByMetricName"`
}

func apiTSDBStatus(t *testing.T, base string, params url.Values) tsdbStatus {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/status/tsdb?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string     `json:"status"`
		Data   tsdbStatus `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("/api/v1/status/tsdb: %d %s %v", resp.StatusCode, r.Status, err)
	}
	return r.Data
}

// histogramQuery selects the native histogram pushed over OTLP (ui.response.size in By).
const histogramQuery = `ui_response_size_bytes`

// pushHistogram sends one OTLP exponential histogram point (a native histogram in the store)
// over OTLP/HTTP, as an SDK would.
func pushHistogram(t *testing.T, otlpURL string) {
	t.Helper()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "ui-test")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("ui.response.size")
	m.SetUnit("By")
	m.SetDescription("Response size")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := eh.DataPoints().AppendEmpty()
	now := time.Now()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Minute)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetScale(0)
	dp.Positive().SetOffset(0)
	dp.Positive().BucketCounts().FromRaw([]uint64{3, 5}) // (1,2] and (2,4]
	dp.SetCount(8)
	dp.SetSum(21.5)
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(otlpURL+"/v1/metrics", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP push: %s", resp.Status)
	}
}

// pressEnter presses Enter as a keyboard does: one keyDown that carries the text, then keyUp.
// chromedp.KeyEvent("\r") sends a separate char event, which inserts a new line even when the
// page handled the keyDown (a real browser then sends no keypress).
func pressEnter() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
			Text: "\r", UnmodifiedText: "\r", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	})
}

// formatLabels writes a label set as the page does: name{a="b", c="d"}, names sorted.
func formatLabels(m map[string]string) string {
	var rest []string
	for k, v := range m {
		if k != "__name__" {
			rest = append(rest, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(rest)
	if len(rest) == 0 {
		return m["__name__"]
	}
	return m["__name__"] + "{" + strings.Join(rest, ", ") + "}"
}

// console records what the page writes to the console; errors and exceptions fail the test
// where it checks them.
type console struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
}

func (c *console) errors(allowNetwork bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs {
		if m.Type != chromedp.ConsoleError && !m.IsException() {
			continue
		}
		// A fetch answered 4xx/5xx is logged by the browser itself (source network); the
		// error phase provokes those on purpose.
		if allowNetwork && m.Source == "network" {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
	}
	return out
}

func (c *console) reset() {
	c.mu.Lock()
	c.msgs = nil
	c.mu.Unlock()
}

func TestQueryPage(t *testing.T) {
	browser := chromium(t)
	binary := harness.Binary(t)
	shots := screenshotDir(t)
	t.Logf("screenshots in %s", shots)

	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	col := harness.NewCollector(t, "metricstor", binary, cfg)
	col.Start()
	t.Cleanup(func() { col.Stop(time.Minute) })
	base := cfg.Ports.PromQLURL()

	// Data in through a real client: remote write 1.0 with metadata, as Prometheus sends it.
	gen, err := loadgen.New(loadgen.Config{URL: cfg.RemoteWriteURL(), Series: hosts * loadgen.SeriesPerHost, Samples: samples, Senders: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := gen.SendMetadata(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(ctx, 0, samples); err != nil {
		t.Fatal(err)
	}
	pushHistogram(t, cfg.Ports.OTLPHTTPURL())

	// The browser: headless, no sandbox (the tests run as root in a container).
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 900))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	// The machine is slow and shared: generous bounds, nothing asserted about speed.
	bctx, cancelTimeout := context.WithTimeout(bctx, 5*time.Minute)
	defer cancelTimeout()

	var cons console
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			cons.mu.Lock()
			cons.msgs = append(cons.msgs, m)
			cons.mu.Unlock()
		}
	}()

	// The helpers take the (sub)test that calls them: only its goroutine may end it.
	do := func(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v\nconsole: %v", what, err, cons.errors(false))
		}
	}
	eval := func(t *testing.T, what, js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	shot := func(t *testing.T, name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", path)
	}
	// waitPanel waits until panel i (0-based) finished its query, well or with an error.
	waitPanel := func(t *testing.T, i int) {
		t.Helper()
		do(t, fmt.Sprintf("panel %d answers", i), chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`(() => { const p = document.querySelectorAll('.panel')[%d]; return p && (p.dataset.state === 'done' || p.dataset.state === 'error'); })()`, i),
			chromedp.WithPollingTimeout(2*time.Minute), chromedp.WithPollingInterval(100*time.Millisecond)))
	}

	t.Run("graph", func(t *testing.T) {
		// / redirects to /graph, which shows an empty editor.
		do(t, "open /", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		// The console listener works, and the page loaded without errors: the probe is the
		// only error seen (then forgotten).
		eval(t, "probe", `console.error('ui-test probe'), 'ok'`)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if errs := cons.errors(false); len(errs) == 1 && strings.Contains(errs[0], "ui-test probe") {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("the console listener did not see the probe: %v", errs)
			}
		}
		cons.reset()
		if loc := eval(t, "location", `location.pathname`); loc != "/graph" {
			t.Errorf("/ led to %s, want /graph", loc)
		}
		// Typed into the editor as a user types (closeBrackets inserts the closing } and ",
		// typing them steps over); the completion popup is closed before Execute.
		do(t, "type the query", chromedp.Click(chromedp.CSS(".panel .cm-content")), chromedp.KeyEvent(cpuQuery), chromedp.KeyEvent("\x1b"))
		if got := eval(t, "editor text", `document.querySelector('.panel .cm-content').innerText`); got != cpuQuery {
			t.Fatalf("editor holds %q, want %q", got, cpuQuery)
		}
		do(t, "execute", chromedp.Click(chromedp.CSS(".panel .execute")))
		waitPanel(t, 0)
		// The range's − button twice: 1h, 30m, 15m (the data spans 10 minutes); each runs the
		// query again, at the automatic resolution of range/250.
		do(t, "shorter range", chromedp.Click(chromedp.CSS(".panel .graph-controls button:first-child")), chromedp.Click(chromedp.CSS(".panel .graph-controls button:first-child")))
		do(t, "15m graph", chromedp.Poll[chromedp.Void](`document.querySelector('.panel .range-input').value === '15m' && document.querySelector('.panel .stats').textContent.startsWith('8 series, step 3s')`,
			chromedp.WithPollingTimeout(2*time.Minute)))
		if errs := eval(t, "panel errors", `[...document.querySelectorAll('.panel .messages .error')].map(e => e.textContent).join('\n')`); errs != "" {
			t.Fatalf("the page shows errors: %s", errs)
		}
		// The page asked a range query of the last 15 minutes; the API's answer to the same query.
		end := time.Now()
		want := apiQuery(t, base, "query_range", url.Values{"query": {cpuQuery},
			"start": {fmt.Sprint(end.Add(-15 * time.Minute).Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"3"}})
		if want.Status != "success" || len(want.Data.Result) != 8 {
			t.Fatalf("API: %s %s, %d series, want 8", want.Status, want.Error, len(want.Data.Result))
		}
		var wantLegend []string
		for _, s := range want.Data.Result {
			wantLegend = append(wantLegend, formatLabels(s.Metric))
		}
		sort.Strings(wantLegend)
		// uPlot's legend: one row per series after the time row.
		legendJSON := eval(t, "legend", `JSON.stringify([...document.querySelectorAll('.panel .u-legend .u-series')].slice(1).map(r => r.querySelector('.u-label').textContent))`)
		var legend []string
		if err := json.Unmarshal([]byte(legendJSON), &legend); err != nil {
			t.Fatal(err)
		}
		sort.Strings(legend)
		if !slices.Equal(legend, wantLegend) {
			t.Errorf("legend:\n got  %q\n want %q", legend, wantLegend)
		}
		if n := eval(t, "canvas", `String(document.querySelectorAll('.panel .u-over').length + document.querySelectorAll('.panel canvas').length)`); n != "2" {
			t.Errorf("the panel has %s uPlot canvas and overlay elements, want 2", n)
		}
		if got := eval(t, "url", `location.search`); !strings.Contains(got, "g0.expr="+url.QueryEscape(cpuQuery)) || !strings.Contains(got, "g0.tab=0") || !strings.Contains(got, "g0.range_input=15m") {
			t.Errorf("the URL does not hold the panel's state: %s", got)
		}
		// Hover: the legend shows each series' value at the cursor.
		box := eval(t, "plot box", `JSON.stringify(document.querySelector('.panel .u-over').getBoundingClientRect())`)
		var r struct{ X, Y, Width, Height float64 }
		if err := json.Unmarshal([]byte(box), &r); err != nil {
			t.Fatal(err)
		}
		// Near the bottom edge, away from the lines, so that no series is focused (dimming the rest).
		do(t, "hover", chromedp.MouseEvent("mouseMoved", r.X+r.Width-20, r.Y+r.Height-2))
		do(t, "hover values", chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('.panel .u-legend .u-series')].slice(1).every(r => r.querySelector('.u-value').textContent !== '' && r.querySelector('.u-value').textContent !== '--')`,
			chromedp.WithPollingTimeout(30*time.Second)))
		shot(t, "graph")

		// The table of an instant query shows the values the API gives.
		do(t, "table tab", chromedp.Click(chromedp.CSS(".panel .tab-table")))
		do(t, "table", chromedp.WaitVisible(chromedp.CSS(".panel table.result")))
		waitPanel(t, 0)
		inst := apiQuery(t, base, "query", url.Values{"query": {cpuQuery}})
		wantRows := map[string]string{}
		for _, s := range inst.Data.Result {
			wantRows[formatLabels(s.Metric)] = fmt.Sprint(s.Value[1])
		}
		rowsJSON := eval(t, "rows", `JSON.stringify(Object.fromEntries([...document.querySelectorAll('.panel table.result tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent])))`)
		gotRows := map[string]string{}
		if err := json.Unmarshal([]byte(rowsJSON), &gotRows); err != nil {
			t.Fatal(err)
		}
		if len(wantRows) != 8 || fmt.Sprint(gotRows) != fmt.Sprint(wantRows) {
			t.Errorf("table:\n got  %v\n want %v", gotRows, wantRows)
		}
		shot(t, "table")

		// Autocompletion offers a pushed metric name, from the API.
		do(t, "add panel", chromedp.Click(chromedp.CSS(".add-panel")), chromedp.WaitVisible(chromedp.CSS(".panel:nth-of-type(2) .cm-content")))
		do(t, "type a prefix", chromedp.Click(chromedp.CSS(".panel:nth-of-type(2) .cm-content")), chromedp.KeyEvent("node_hwm"))
		do(t, "completion", chromedp.Poll[chromedp.Void](`[...document.querySelectorAll('.cm-tooltip-autocomplete li')].some(li => li.textContent.includes('node_hwmon_temp_celsius'))`,
			chromedp.WithPollingTimeout(time.Minute)))
		shot(t, "autocomplete")
		// Enter accepts the completion, and a second Enter (no completion open) runs the query.
		do(t, "accept", pressEnter())
		if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](`document.querySelectorAll('.panel')[1].querySelector('.cm-content').innerText === 'node_hwmon_temp_celsius'`,
			chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("Enter did not accept the completion: the editor holds %q (%v)", eval(t, "editor", `document.querySelectorAll('.panel')[1].querySelector('.cm-content').innerText`), err)
		}
		do(t, "run with Enter", pressEnter())
		waitPanel(t, 1)
		if got := eval(t, "series", `document.querySelectorAll('.panel')[1].dataset.series`); got != fmt.Sprint(hosts*8) {
			t.Errorf("Enter ran a query of %s series, want %d", got, hosts*8)
		}
		if errs := cons.errors(false); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("link", func(t *testing.T) {
		cons.reset()
		// A classic UI link, as generatorURLs and Alertmanager make: a table panel and a stacked
		// graph panel over 30 minutes.
		expr := `sum by (mode) (rate(node_cpu_seconds_total[5m]))`
		q := url.Values{}
		q.Set("g0.expr", expr)
		q.Set("g0.tab", "1")
		q.Set("g1.expr", `node_hwmon_temp_celsius`)
		q.Set("g1.tab", "0")
		q.Set("g1.range_input", "30m")
		q.Set("g1.stacked", "1")
		q.Set("g1.step_input", "30")
		endInput := time.Now().UTC().Add(time.Minute).Format(time.DateTime) // the classic UI's end_input
		q.Set("g1.end_input", endInput)
		do(t, "open link", chromedp.Navigate(base+"/graph?"+q.Encode()), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		waitPanel(t, 1)
		if n := eval(t, "panels", `String(document.querySelectorAll('.panel').length)`); n != "2" {
			t.Fatalf("%s panels, want 2", n)
		}
		if got := eval(t, "editor", `document.querySelector('.panel .cm-content').innerText`); got != expr {
			t.Errorf("panel 0 holds %q, want %q", got, expr)
		}
		if got := eval(t, "tab", `String(document.querySelectorAll('.panel')[0].classList.contains('show-table'))`); got != "true" {
			t.Error("panel 0 does not show the table (g0.tab=1)")
		}
		want := apiQuery(t, base, "query", url.Values{"query": {expr}})
		if got := eval(t, "rows", `String(document.querySelectorAll('.panel')[0].querySelectorAll('table.result tr').length)`); got != fmt.Sprint(len(want.Data.Result)) || len(want.Data.Result) != 8 {
			t.Errorf("panel 0 shows %s rows, the API %d series (want 8)", got, len(want.Data.Result))
		}
		p1 := `document.querySelectorAll('.panel')[1]`
		if got := eval(t, "settings", p1+`.querySelector('.range-input').value + ' ' + `+p1+`.querySelector('.stacked-input').checked + ' ' + `+p1+`.querySelector('.step-input').value + ' ' + `+p1+`.querySelector('.end-input').value`); got != "30m true 30 "+endInput {
			t.Errorf("panel 1 settings: %q, want %q", got, "30m true 30 "+endInput)
		}
		if got := eval(t, "stats", p1+`.querySelector('.stats').textContent`); !strings.HasPrefix(got, fmt.Sprintf("%d series, step 30s", hosts*8)) {
			t.Errorf("panel 1 says %q, want %d series at step 30s", got, hosts*8)
		}
		// The page writes the state back in the same format.
		search := eval(t, "url", `location.search`)
		back, err := url.ParseQuery(strings.TrimPrefix(search, "?"))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"g0.expr", "g0.tab", "g1.expr", "g1.tab", "g1.range_input", "g1.stacked", "g1.step_input", "g1.end_input"} {
			if back.Get(k) != q.Get(k) {
				t.Errorf("the page's URL has %s=%q, the link %q", k, back.Get(k), q.Get(k))
			}
		}
		if got := eval(t, "series", `String(document.querySelectorAll('.panel')[1].querySelectorAll('.u-legend .u-series').length - 1)`); got != fmt.Sprint(hosts*8) {
			t.Errorf("panel 1 graphs %s series, want %d", got, hosts*8)
		}
		shot(t, "link")
		if errs := cons.errors(false); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("native histogram", func(t *testing.T) {
		cons.reset()
		want := apiQuery(t, base, "query", url.Values{"query": {histogramQuery}})
		if want.Status != "success" || len(want.Data.Result) != 1 {
			t.Fatalf("API: %s %s, %d series, want 1", want.Status, want.Error, len(want.Data.Result))
		}
		h, _ := want.Data.Result[0].Histogram[1].(map[string]any)
		if h == nil {
			t.Fatalf("API answered no histogram: %+v", want.Data.Result[0])
		}
		do(t, "open", chromedp.Navigate(base+"/graph?g0.tab=1&g0.expr="+url.QueryEscape(histogramQuery)), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		got := eval(t, "histogram", `document.querySelector('.panel table.result .histogram')?.innerText ?? ''`)
		if wantHead := fmt.Sprintf("count: %v, sum: %v", h["count"], h["sum"]); !strings.HasPrefix(got, wantHead) || h["count"] != "8" {
			t.Errorf("the table shows %q, want it to start with %q (count 8)", got, wantHead)
		}
		// One line per bucket of the API's answer, in interval notation by its boundary rule (0
		// open left, 1 open right, 2 open both, 3 closed both): (1,2] holds 3, (2,4] holds 5.
		buckets, _ := h["buckets"].([]any)
		for _, b := range buckets {
			bb := b.([]any)
			rule := bb[0].(float64)
			open, closing := "[", ")"
			if rule == 0 || rule == 2 {
				open = "("
			}
			if rule == 0 || rule == 3 {
				closing = "]"
			}
			if line := fmt.Sprintf("%s%v, %v%s: %v", open, bb[1], bb[2], closing, bb[3]); !strings.Contains(got, line) {
				t.Errorf("the table lacks bucket %q: %q", line, got)
			}
		}
		if len(buckets) != 2 {
			t.Errorf("the API gives %d buckets, want 2", len(buckets))
		}
		shot(t, "histogram")
		if errs := cons.errors(false); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("table types", func(t *testing.T) {
		cons.reset()
		// A scalar, a string and a range vector (matrix) in three table panels.
		matrix := `node_network_up{instance="host-00000:9100"}[1m]`
		// The matrix at a fixed time, a second past the last sample: the window holds its last
		// four samples whenever the page and the API are asked (at "now" a sample could leave
		// the window between the two).
		matrixAt := time.UnixMilli(gen.Timestamp(samples - 1)).Add(time.Second).UTC().Truncate(time.Second)
		q := url.Values{}
		for i, e := range []string{`1 + 1`, `"hello"`, matrix} {
			q.Set(fmt.Sprintf("g%d.expr", i), e)
			q.Set(fmt.Sprintf("g%d.tab", i), "1")
		}
		q.Set("g2.moment_input", matrixAt.Format(time.DateTime))
		do(t, "open", chromedp.Navigate(base+"/graph?"+q.Encode()), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		for i := range 3 {
			waitPanel(t, i)
		}
		cells := func(i int) [][]string {
			js := fmt.Sprintf(`JSON.stringify([...document.querySelectorAll('.panel')[%d].querySelectorAll('table.result tr')].map(r => [...r.cells].map(c => c.textContent)))`, i)
			var out [][]string
			if err := json.Unmarshal([]byte(eval(t, "cells", js)), &out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		if got := cells(0); fmt.Sprint(got) != "[[scalar 2]]" {
			t.Errorf("scalar 1 + 1 shows %v", got)
		}
		if got := cells(1); fmt.Sprint(got) != "[[string hello]]" {
			t.Errorf(`string "hello" shows %v`, got)
		}
		// Each matrix row holds the series' samples as "value @time", as the API gives them.
		want := apiQuery(t, base, "query", url.Values{"query": {matrix}, "time": {fmt.Sprint(matrixAt.Unix())}})
		wantRows := map[string]string{}
		for _, s := range want.Data.Result {
			var lines []string
			for _, v := range s.Values {
				lines = append(lines, fmt.Sprintf("%v @%s", v[1], strconv.FormatFloat(v[0].(float64), 'f', -1, 64)))
			}
			wantRows[formatLabels(s.Metric)] = strings.Join(lines, "\n")
		}
		gotRows := map[string]string{}
		for _, r := range cells(2) {
			gotRows[r[0]] = r[1]
		}
		if len(wantRows) != 4 || strings.Count(fmt.Sprint(wantRows), "@") != 16 || fmt.Sprint(gotRows) != fmt.Sprint(wantRows) {
			t.Errorf("matrix table:\n got  %v\n want %v", gotRows, wantRows)
		}
		shot(t, "table-types")

		// An evaluation time in the past (the classic UI's moment_input, UTC): the values of then.
		moment := time.UnixMilli(gen.Timestamp(10)).UTC().Truncate(time.Second)
		do(t, "open moment", chromedp.Navigate(base+"/graph?g0.tab=1&g0.expr="+url.QueryEscape(cpuQuery)+"&g0.moment_input="+url.QueryEscape(moment.Format(time.DateTime))),
			chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		then := apiQuery(t, base, "query", url.Values{"query": {cpuQuery}, "time": {fmt.Sprint(moment.Unix())}})
		nowAnswer := apiQuery(t, base, "query", url.Values{"query": {cpuQuery}})
		wantThen, wantNow := map[string]string{}, map[string]string{}
		for _, s := range then.Data.Result {
			wantThen[formatLabels(s.Metric)] = fmt.Sprint(s.Value[1])
		}
		for _, s := range nowAnswer.Data.Result {
			wantNow[formatLabels(s.Metric)] = fmt.Sprint(s.Value[1])
		}
		gotThen := map[string]string{}
		for _, r := range cells(0) {
			gotThen[r[0]] = r[1]
		}
		if len(wantThen) != 8 || fmt.Sprint(gotThen) != fmt.Sprint(wantThen) || fmt.Sprint(wantThen) == fmt.Sprint(wantNow) {
			t.Errorf("table at %s:\n got  %v\n want %v (now: %v)", moment, gotThen, wantThen, wantNow)
		}
		shot(t, "table-moment")
		if errs := cons.errors(false); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		cons.reset()
		do(t, "open /metadata", chromedp.Navigate(base+"/metadata"), chromedp.WaitVisible(chromedp.CSS("table.metrics tr:nth-child(2)")))
		rowsJSON := eval(t, "rows", `JSON.stringify([...document.querySelectorAll('table.metrics tr')].slice(1).map(r => [...r.cells].map(c => c.textContent)))`)
		var rows [][]string
		if err := json.Unmarshal([]byte(rowsJSON), &rows); err != nil {
			t.Fatal(err)
		}
		byName := map[string][]string{}
		for _, r := range rows {
			byName[r[0]] = r
		}
		for _, md := range loadgen.Metadata() {
			r, ok := byName[md.MetricFamilyName]
			typ := strings.ToLower(md.Type.String())
			if !ok || r[1] != typ || r[3] != md.Help {
				t.Errorf("metric %s: row %q, want type %s, help %q", md.MetricFamilyName, r, typ, md.Help)
			}
		}
		shot(t, "metadata")
		// A name opens it in a table panel.
		do(t, "open a name", chromedp.Click(chromedp.CSS(`table.metrics a[href$="node_network_up&g0.tab=1"]`)), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		if got := eval(t, "opened", `location.pathname + ' ' + document.querySelector('.panel .cm-content').innerText + ' ' + document.querySelectorAll('.panel table.result tr').length`); got != fmt.Sprintf("/graph node_network_up %d", hosts*4) {
			t.Errorf("the metric's link opened %q, want /graph with node_network_up and %d rows", got, hosts*4)
		}
		if errs := cons.errors(false); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})

	t.Run("errors and status", func(t *testing.T) {
		// A query with no series says so instead of drawing an empty plot.
		do(t, "open empty", chromedp.Navigate(base+"/graph?g0.expr=no_such_metric&g0.tab=0"), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		if got := eval(t, "empty", `document.querySelector('.panel .graph').innerText`); got != "Empty query result" {
			t.Errorf("the graph of no series shows %q", got)
		}

		// The API's error is shown as the API returns it.
		bad := `sum(rate(node_cpu_seconds_total[5m])`
		want := apiQuery(t, base, "query", url.Values{"query": {bad}})
		if want.Status != "error" || want.Error == "" {
			t.Fatalf("API answered %+v to a bad query", want)
		}
		do(t, "open bad link", chromedp.Navigate(base+"/graph?g0.tab=1&g0.expr="+url.QueryEscape(bad)), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		if got := eval(t, "error", `document.querySelector('.panel .messages .error')?.textContent ?? ''`); got != "Error ("+want.ErrorType+"): "+want.Error {
			t.Errorf("the page shows %q, want the API's %s error %q", got, want.ErrorType, want.Error)
		}
		shot(t, "error")

		// Warnings and infos too: rate() of a gauge gives an info annotation.
		noted := `rate(node_hwmon_temp_celsius[5m])`
		want = apiQuery(t, base, "query", url.Values{"query": {noted}})
		if want.Status != "success" || len(want.Infos)+len(want.Warnings) == 0 {
			t.Fatalf("API answered %s with no warning or info to %s", want.Status, noted)
		}
		do(t, "open noted link", chromedp.Navigate(base+"/graph?g0.tab=1&g0.expr="+url.QueryEscape(noted)), chromedp.WaitVisible(chromedp.CSS(".panel .cm-content")))
		waitPanel(t, 0)
		shown := eval(t, "notes", `[...document.querySelectorAll('.panel .messages .warning, .panel .messages .info')].map(e => e.textContent).join('\n')`)
		for _, w := range want.Warnings {
			if !strings.Contains(shown, "Warning: "+w) {
				t.Errorf("the page lacks the API's warning %q: %q", w, shown)
			}
		}
		for _, i := range want.Infos {
			if !strings.Contains(shown, "Info: "+i) {
				t.Errorf("the page lacks the API's info %q: %q", i, shown)
			}
		}

		do(t, "open /status", chromedp.Navigate(base+"/status"), chromedp.WaitVisible(chromedp.CSS(".status-section:nth-of-type(4) table, .status-section:nth-of-type(4) .error")))
		do(t, "status filled", chromedp.Poll[chromedp.Void](`document.querySelectorAll('.status-section').length === 4 && ![...document.querySelectorAll('td')].some(td => td.textContent === '…')`,
			chromedp.WithPollingTimeout(time.Minute)))
		kvJSON := eval(t, "status", `JSON.stringify(Object.fromEntries([...document.querySelectorAll('table.kv tr')].map(r => [r.cells[0].textContent, r.cells[1].textContent])))`)
		kv := map[string]string{}
		if err := json.Unmarshal([]byte(kvJSON), &kv); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]string{
			// loadgen's, and the OTLP histogram.
			"Metric names": fmt.Sprint(len(loadgen.MetricNames()) + 1),
			"Series with a sample in the last 5 minutes": fmt.Sprint(hosts*loadgen.SeriesPerHost + 1),
			"version": "3.16.0",
		} {
			if kv[k] != v {
				t.Errorf("status %q: %q, want %q (all: %v)", k, kv[k], v, kv)
			}
		}
		if !strings.HasPrefix(kv["branch"], "metricstor/") {
			t.Errorf("status branch %q, want metricstor/<version>", kv["branch"])
		}
		// The TSDB status through the binary: the head counts every series pushed (loadgen's
		// over remote write, the OTLP histogram), and the page shows the API's numbers.
		tsdb := apiTSDBStatus(t, base, nil) // the page's: Prometheus's default limit, 10
		if want := uint64(hosts*loadgen.SeriesPerHost + 1); tsdb.HeadStats.NumSeries != want {
			t.Errorf("/api/v1/status/tsdb numSeries %d, want the %d series pushed", tsdb.HeadStats.NumSeries, want)
		}
		if kv["Number of series"] != fmt.Sprint(tsdb.HeadStats.NumSeries) {
			t.Errorf("the page shows %q series, the API %d", kv["Number of series"], tsdb.HeadStats.NumSeries)
		}
		if kv["Storage retention"] != "15d" {
			t.Errorf("the page shows storage retention %q, want the storage extension's default 15d", kv["Storage retention"])
		}
		all, total := map[string]uint64{}, uint64(0)
		for _, s := range apiTSDBStatus(t, base, url.Values{"limit": {"1000"}}).SeriesCountByMetricName {
			all[s.Name] = s.Value
			total += s.Value
		}
		if all["node_network_up"] != hosts*4 || len(all) != len(loadgen.MetricNames())+1 || total != tsdb.HeadStats.NumSeries {
			t.Errorf("/api/v1/status/tsdb counts %d node_network_up series (want %d), %d names (want %d), %d series in all (want %d)",
				all["node_network_up"], hosts*4, len(all), len(loadgen.MetricNames())+1, total, tsdb.HeadStats.NumSeries)
		}
		byName := map[string]uint64{}
		for _, s := range tsdb.SeriesCountByMetricName {
			byName[s.Name] = s.Value
		}
		rowsJSON := eval(t, "tsdb tables", `JSON.stringify(Object.fromEntries([...document.querySelectorAll('table.tsdb-stats[data-stat="seriesCountByMetricName"] tr')].slice(1).map(r => [r.cells[0].textContent, r.cells[1].textContent])))`)
		rows := map[string]string{}
		if err := json.Unmarshal([]byte(rowsJSON), &rows); err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(tsdb.SeriesCountByMetricName) {
			t.Errorf("the page lists %d metric names by series count, the API %d: %v", len(rows), len(tsdb.SeriesCountByMetricName), rows)
		}
		for name, n := range byName {
			if rows[name] != fmt.Sprint(n) {
				t.Errorf("the page shows %q series of %s, the API %d", rows[name], name, n)
			}
		}
		if n := eval(t, "tsdb tables", `String(document.querySelectorAll('table.tsdb-stats').length)`); n != "4" {
			t.Errorf("the page shows %s cardinality tables, want Prometheus's 4", n)
		}
		shot(t, "status")
		// Only the browser's own lines about the 400 above.
		if errs := cons.errors(true); len(errs) > 0 {
			t.Errorf("console errors: %v", errs)
		}
	})
}
