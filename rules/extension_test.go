// The extension is tested with the real storage and promql extensions, as in the binary: an
// external test package, since queryext imports this one.
package rules_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap/zaptest"

	"github.com/metricstor/metricstor/queryext"
	"github.com/metricstor/metricstor/rules"
	mstorage "github.com/metricstor/metricstor/storage"
)

// waitFor is how long the tests wait for an evaluation to show; it is a bound on waiting, not an
// assertion on speed (evaluations run every 100ms).
const waitFor = 30 * time.Second

const ruleFile = `groups:
  - name: demo
    rules:
      - record: job:demo_value:sum
        expr: sum by (job) (demo_value)
      - alert: DemoHigh
        expr: demo_value > 5
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} is at {{ $value }}"
`

type testHost map[component.ID]component.Component

func (h testHost) GetExtensions() map[component.ID]component.Component { return h }

func settings(t *testing.T, typ component.Type) extension.Settings {
	return extension.Settings{
		ID:                component.NewID(typ),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
}

// env is a running storage extension, promql extension and rules extension, as in the binary.
type env struct {
	store mstorage.Store
	api   string // base URL of the promql extension
	rules extension.Extension
	host  testHost
	tel   *componenttest.Telemetry // the rules extension's telemetry
}

// startEnv starts the store and the promql extension, then the rules extension with cfg.
func startEnv(t *testing.T, mutate func(*rules.Config)) (*env, error) {
	return startEnvQuery(t, nil, mutate)
}

// startEnvQuery is startEnv with settings of the promql extension changed by qmutate.
func startEnvQuery(t *testing.T, qmutate func(*queryext.Config), mutate func(*rules.Config)) (*env, error) {
	ctx := context.Background()
	sf := mstorage.NewFactory()
	scfg := sf.CreateDefaultConfig().(*mstorage.Config)
	scfg.Directory = t.TempDir()
	sset := settings(t, sf.Type())
	sset.Logger = zaptest.NewLogger(t)
	storeExt, err := sf.Create(ctx, sset, scfg)
	require.NoError(t, err)
	require.NoError(t, storeExt.Start(ctx, testHost{}))
	t.Cleanup(func() { require.NoError(t, storeExt.Shutdown(ctx)) })

	qf := queryext.NewFactory()
	qcfg := qf.CreateDefaultConfig().(*queryext.Config)
	qcfg.NetAddr.Endpoint = "127.0.0.1:0"
	if qmutate != nil {
		qmutate(qcfg)
	}
	qset := settings(t, qf.Type())
	qset.Logger = zaptest.NewLogger(t)
	queryExt, err := qf.Create(ctx, qset, qcfg)
	require.NoError(t, err)
	host := testHost{component.NewID(sf.Type()): storeExt}
	require.NoError(t, queryExt.Start(ctx, host))
	t.Cleanup(func() { require.NoError(t, queryExt.Shutdown(ctx)) })
	host[component.NewID(qf.Type())] = queryExt

	cfg := rules.NewFactory().CreateDefaultConfig().(*rules.Config)
	cfg.EvaluationInterval = 100 * time.Millisecond
	cfg.FileCheckInterval = 100 * time.Millisecond
	if mutate != nil {
		mutate(cfg)
	}
	require.NoError(t, cfg.Validate())
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tel.Shutdown(ctx)) })
	rset := settings(t, rules.NewFactory().Type())
	rset.TelemetrySettings = tel.NewTelemetrySettings()
	rset.Logger = zaptest.NewLogger(t)
	ext, err := rules.NewFactory().Create(ctx, rset, cfg)
	require.NoError(t, err)
	assert.Equal(t, []component.ID{cfg.PromQL}, ext.(extensioncapabilities.Dependent).Dependencies())
	e := &env{
		store: storeExt.(mstorage.Store),
		api:   queryExt.(rules.QueryAPI).ExternalURL().String(),
		rules: ext,
		host:  host,
		tel:   tel,
	}
	if err := ext.Start(ctx, host); err != nil {
		require.NoError(t, ext.Shutdown(ctx))
		return e, err
	}
	t.Cleanup(func() { require.NoError(t, ext.Shutdown(ctx)) })
	// The collector's last step of a start: the API answers from here on.
	require.NoError(t, queryExt.(extensioncapabilities.PipelineWatcher).Ready())
	return e, nil
}

func appendNow(t *testing.T, s mstorage.Store, instance string, v float64) {
	app := s.AppenderV2(context.Background())
	ls := labels.FromStrings("__name__", "demo_value", "job", "demo", "instance", instance)
	_, err := app.Append(0, ls, 0, time.Now().UnixMilli(), v, nil, nil, promstorage.AppendV2Options{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
}

func writeFile(t *testing.T, path, content string) {
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// apiData GETs an API path and returns its `data`.
func apiData(t *testing.T, base, path string) json.RawMessage {
	resp, err := http.Get(base + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &r), string(b))
	require.Equal(t, "success", r.Status)
	return r.Data
}

type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

func alerts(t *testing.T, base string) []apiAlert {
	var d struct {
		Alerts []apiAlert `json:"alerts"`
	}
	require.NoError(t, json.Unmarshal(apiData(t, base, "/api/v1/alerts"), &d))
	return d.Alerts
}

type apiGroup struct {
	Name  string `json:"name"`
	File  string `json:"file"`
	Rules []struct {
		Name   string `json:"name"`
		Type   string `json:"type"`
		Health string `json:"health"`
		State  string `json:"state"`
	} `json:"rules"`
}

func ruleGroups(t *testing.T, base string) []apiGroup {
	var d struct {
		Groups []apiGroup `json:"groups"`
	}
	require.NoError(t, json.Unmarshal(apiData(t, base, "/api/v1/rules"), &d))
	return d.Groups
}

// instantQuery returns the value of the single series of an instant query, "" when empty.
func instantQuery(t *testing.T, base, q string) string {
	var d struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal(apiData(t, base, "/api/v1/query?query="+url.QueryEscape(q)), &d))
	if len(d.Result) != 1 {
		return ""
	}
	return d.Result[0].Value[1].(string)
}

// amReceiver is an httptest stand-in of Alertmanager's API v2 POST /api/v2/alerts; the end-to-end
// test uses a real Alertmanager.
type amReceiver struct {
	mu     sync.Mutex
	posts  [][]amAlert
	server *httptest.Server
}

type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

func newAMReceiver(t *testing.T) *amReceiver {
	r := &amReceiver{}
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/prefix/api/v2/alerts" {
			http.Error(w, "unexpected "+req.Method+" "+req.URL.Path, http.StatusNotFound)
			return
		}
		var as []amAlert
		if err := json.NewDecoder(req.Body).Decode(&as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.posts = append(r.posts, as)
		r.mu.Unlock()
	}))
	t.Cleanup(r.server.Close)
	return r
}

func (r *amReceiver) all() []amAlert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []amAlert
	for _, p := range r.posts {
		out = append(out, p...)
	}
	return out
}

// TestRulesEvaluateAlertAndServe: a recording rule's result is written into the store and read
// back through PromQL; an alert fires, shows in /api/v1/alerts and /api/v1/rules, reaches the
// Alertmanager with external labels and a generatorURL on the query API, and is sent resolved once
// the data falls back.
func TestRulesEvaluateAlertAndServe(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "demo.rules.yml"), ruleFile)
	am := newAMReceiver(t)
	e, err := startEnv(t, func(cfg *rules.Config) {
		cfg.RuleFiles = []string{filepath.Join(dir, "*.rules.yml")}
		cfg.ExternalLabels = map[string]string{"cluster": "test"}
		cfg.Alertmanagers = []string{am.server.URL + "/prefix"}
	})
	require.NoError(t, err)

	var ams struct {
		Active []struct {
			URL string `json:"url"`
		} `json:"activeAlertmanagers"`
	}
	require.NoError(t, json.Unmarshal(apiData(t, e.api, "/api/v1/alertmanagers"), &ams))
	require.Len(t, ams.Active, 1)
	assert.Equal(t, am.server.URL+"/prefix/api/v2/alerts", ams.Active[0].URL)

	appendNow(t, e.store, "a", 7)
	appendNow(t, e.store, "b", 3)

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "10", instantQuery(t, e.api, `job:demo_value:sum{job="demo"}`))
	}, waitFor, 50*time.Millisecond, "the recording rule's result is in the store")

	require.EventuallyWithT(t, func(c *assert.CollectT) {
		as := alerts(t, e.api)
		if assert.Len(c, as, 1) {
			assert.Equal(c, "firing", as[0].State)
			assert.Equal(c, map[string]string{"alertname": "DemoHigh", "job": "demo", "instance": "a", "severity": "page"}, as[0].Labels)
			assert.Equal(c, map[string]string{"summary": "a is at 7"}, as[0].Annotations)
		}
	}, waitFor, 50*time.Millisecond)

	groups := ruleGroups(t, e.api)
	require.Len(t, groups, 1)
	assert.Equal(t, "demo", groups[0].Name)
	assert.Equal(t, filepath.Join(dir, "demo.rules.yml"), groups[0].File)
	require.Len(t, groups[0].Rules, 2)
	assert.Equal(t, "job:demo_value:sum", groups[0].Rules[0].Name)
	assert.Equal(t, "recording", groups[0].Rules[0].Type)
	assert.Equal(t, "ok", groups[0].Rules[0].Health)
	assert.Equal(t, "DemoHigh", groups[0].Rules[1].Name)
	assert.Equal(t, "alerting", groups[0].Rules[1].Type)
	assert.Equal(t, "firing", groups[0].Rules[1].State)

	// ALERTS is written back like in Prometheus (committed after the state is visible).
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "1", instantQuery(t, e.api, `ALERTS{alertname="DemoHigh",alertstate="firing"}`))
	}, waitFor, 50*time.Millisecond)

	var sent amAlert
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		as := am.all()
		if assert.NotEmpty(c, as) {
			sent = as[0]
		}
	}, waitFor, 50*time.Millisecond, "the Alertmanager receives the alert")
	assert.Equal(t, map[string]string{"alertname": "DemoHigh", "job": "demo", "instance": "a", "severity": "page", "cluster": "test"}, sent.Labels)
	assert.Equal(t, map[string]string{"summary": "a is at 7"}, sent.Annotations)
	assert.True(t, strings.HasPrefix(sent.GeneratorURL, e.api+"/graph?g0.expr="), sent.GeneratorURL)
	gu, err := url.Parse(sent.GeneratorURL)
	require.NoError(t, err)
	assert.Equal(t, "demo_value > 5", gu.Query().Get("g0.expr"))

	// The value falls back: the alert is sent resolved (endsAt not after now) and leaves /alerts.
	appendNow(t, e.store, "a", 1)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		as := am.all()
		last := as[len(as)-1]
		assert.False(c, last.EndsAt.IsZero())
		assert.False(c, last.EndsAt.After(time.Now()), "resolved: endsAt %s", last.EndsAt)
	}, waitFor, 50*time.Millisecond, "the Alertmanager receives the resolution")
	assert.Empty(t, alerts(t, e.api))

	// Telemetry: evaluations of the group, the two alerts sent (firing, resolved) to the Alertmanager.
	group := filepath.Join(dir, "demo.rules.yml") + ";demo"
	assert.Positive(t, sumOf(t, e.tel, "metricstor_rules_evaluations", "rule_group", group))
	assert.Equal(t, int64(0), sumOf(t, e.tel, "metricstor_rules_evaluation_failures", "rule_group", group))
	assert.GreaterOrEqual(t, sumOf(t, e.tel, "metricstor_rules_notifications_sent", "alertmanager", am.server.URL+"/prefix/api/v2/alerts"), int64(2))
	assert.Equal(t, int64(0), sumOf(t, e.tel, "metricstor_rules_notifications_dropped", "alertmanager", am.server.URL+"/prefix/api/v2/alerts"))
}

// sumOf is the value of the int64 sum or gauge name at the data point whose attribute key is
// value; it fails the test when there is none.
func sumOf(t *testing.T, tel *componenttest.Telemetry, name, key, value string) int64 {
	t.Helper()
	m, err := tel.GetMetric(name)
	require.NoError(t, err, name)
	var points []metricdata.DataPoint[int64]
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		points = d.DataPoints
	case metricdata.Gauge[int64]:
		points = d.DataPoints
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	for _, p := range points {
		if v, ok := p.Attributes.Value(attribute.Key(key)); ok && v.AsString() == value {
			return p.Value
		}
	}
	t.Fatalf("%s: no data point with %s=%q in %+v", name, key, value, points)
	return 0
}

// TestRulesReloadOnChange: a rule file changed on disk is reloaded; an invalid change leaves the
// previous rules running.
func TestRulesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "demo.yml")
	writeFile(t, path, ruleFile)
	e, err := startEnv(t, func(cfg *rules.Config) { cfg.RuleFiles = []string{path} })
	require.NoError(t, err)
	require.Len(t, ruleGroups(t, e.api), 1)

	writeFile(t, path, "groups:\n  - name: renamed\n    rules:\n      - record: two\n        expr: vector(2)\n")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		g := ruleGroups(t, e.api)
		if assert.Len(c, g, 1) {
			assert.Equal(c, "renamed", g[0].Name)
		}
	}, waitFor, 50*time.Millisecond)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "2", instantQuery(t, e.api, "two"))
	}, waitFor, 50*time.Millisecond)

	// Invalid: the previous rules keep running and keep being served.
	writeFile(t, path, "groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: sum(\n")
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		m, err := e.tel.GetMetric("metricstor_rules_reloads")
		if assert.NoError(c, err) {
			assert.Len(c, m.Data.(metricdata.Sum[int64]).DataPoints, 2, "a success and a failure")
		}
	}, waitFor, 50*time.Millisecond)
	assert.Equal(t, int64(1), sumOf(t, e.tel, "metricstor_rules_reloads", "result", "success"))
	assert.Equal(t, int64(1), sumOf(t, e.tel, "metricstor_rules_reloads", "result", "failure"))
	// The check runs every 100ms: the same broken content is not tried again, and the previous
	// rules are still served.
	for range 5 {
		g := ruleGroups(t, e.api)
		require.Len(t, g, 1)
		assert.Equal(t, "renamed", g[0].Name)
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, int64(1), sumOf(t, e.tel, "metricstor_rules_reloads", "result", "failure"))
}

// TestRulesQueryLimit: a rule whose query exceeds the promql extension's max_samples fails with
// the engine's error, shown in /api/v1/rules and counted in the telemetry; the group's other
// rules go on.
func TestRulesQueryLimit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "limit.yml")
	writeFile(t, path, "groups:\n  - name: limit\n    rules:\n      - record: too_big\n        expr: demo_value + 0\n      - record: fine\n        expr: vector(1)\n")
	e, err := startEnvQuery(t, func(q *queryext.Config) { q.MaxSamples = 4 }, func(cfg *rules.Config) { cfg.RuleFiles = []string{path} })
	require.NoError(t, err)
	for _, inst := range []string{"a", "b", "c", "d", "e", "f"} {
		appendNow(t, e.store, inst, 1)
	}

	var d struct {
		Groups []struct {
			Rules []struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			} `json:"rules"`
		} `json:"groups"`
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		require.NoError(c, json.Unmarshal(apiData(t, e.api, "/api/v1/rules"), &d))
		if assert.Len(c, d.Groups, 1) && assert.Len(c, d.Groups[0].Rules, 2) {
			assert.Equal(c, "err", d.Groups[0].Rules[0].Health)
			assert.Equal(c, "ok", d.Groups[0].Rules[1].Health, d.Groups[0].Rules[1].LastError)
		}
	}, waitFor, 50*time.Millisecond)
	assert.Contains(t, d.Groups[0].Rules[0].LastError, "query processing would load too many samples into memory")
	assert.Equal(t, "1", instantQuery(t, e.api, "fine"))
	assert.Positive(t, sumOf(t, e.tel, "metricstor_rules_evaluation_failures", "rule_group", path+";limit"))
}

// TestRulesQueryOffset: query_offset evaluates groups that far in the past (data pushed now is not
// seen yet), unless a group sets its own.
func TestRulesQueryOffset(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "offset.yml")
	writeFile(t, path, `groups:
  - name: global_offset
    rules:
      - record: seen_with_offset
        expr: demo_value
  - name: own_offset
    query_offset: 0s
    rules:
      - record: seen_now
        expr: demo_value
`)
	e, err := startEnv(t, func(cfg *rules.Config) {
		cfg.RuleFiles = []string{path}
		cfg.QueryOffset = time.Hour
	})
	require.NoError(t, err)
	appendNow(t, e.store, "a", 4)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, "4", instantQuery(t, e.api, "seen_now"))
	}, waitFor, 50*time.Millisecond)
	// Both groups evaluated since the sample was appended (seen_now has it); give the offset
	// group a few more evaluations: it evaluates an hour ago, before the sample.
	time.Sleep(500 * time.Millisecond)
	assert.Empty(t, instantQuery(t, e.api, "seen_with_offset"))
	var d struct {
		Groups []struct {
			Name        string `json:"name"`
			Evaluations string `json:"lastEvaluation"`
		} `json:"groups"`
	}
	require.NoError(t, json.Unmarshal(apiData(t, e.api, "/api/v1/rules"), &d))
	require.Len(t, d.Groups, 2)
	assert.NotEqual(t, "0001-01-01T00:00:00Z", d.Groups[0].Evaluations, "the offset group has been evaluated")
}

// TestRulesAlertmanagerDown: an Alertmanager that does not answer costs counted send errors, not
// evaluations.
func TestRulesAlertmanagerDown(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "demo.rules.yml"), ruleFile)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more
	e, err := startEnv(t, func(cfg *rules.Config) {
		cfg.RuleFiles = []string{filepath.Join(dir, "*.rules.yml")}
		cfg.Alertmanagers = []string{downURL}
		cfg.AlertmanagerTimeout = time.Second
	})
	require.NoError(t, err)
	appendNow(t, e.store, "a", 7)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		m, err := e.tel.GetMetric("metricstor_rules_notifications_errors")
		if assert.NoError(c, err) {
			dp := m.Data.(metricdata.Sum[int64]).DataPoints
			if assert.Len(c, dp, 1) {
				assert.Positive(c, dp[0].Value)
			}
		}
	}, waitFor, 50*time.Millisecond)
	assert.Equal(t, int64(0), sumOf(t, e.tel, "metricstor_rules_notifications_sent", "alertmanager", downURL+"/api/v2/alerts"))
	as := alerts(t, e.api)
	require.Len(t, as, 1)
	assert.Equal(t, "firing", as[0].State)
}

// TestRulesInvalidFileFailsStart: Start fails with Prometheus's error naming the file and rule.
func TestRulesInvalidFileFailsStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yml")
	writeFile(t, path, "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: sum(\n")
	_, err := startEnv(t, func(cfg *rules.Config) { cfg.RuleFiles = []string{path} })
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rules: rule_files: ")
	assert.Contains(t, err.Error(), path)
}

// TestRulesAPIEmptyWithoutRules: with no rule files the API serves empty lists, and after the
// rules extension stops the promql extension serves empty lists again.
func TestRulesAPIEmptyWithoutRules(t *testing.T) {
	e, err := startEnv(t, nil)
	require.NoError(t, err)
	assert.Empty(t, ruleGroups(t, e.api))
	assert.Empty(t, alerts(t, e.api))
	require.NoError(t, e.rules.Shutdown(context.Background()))
	assert.Empty(t, ruleGroups(t, e.api))
}

// TestRulesPromQLNotFound: a missing or wrong promql extension fails Start with its ID.
func TestRulesPromQLNotFound(t *testing.T) {
	f := rules.NewFactory()
	cfg := f.CreateDefaultConfig().(*rules.Config)
	cfg.PromQL = component.MustNewIDWithName("promql", "other")
	ext, err := f.Create(context.Background(), settings(t, f.Type()), cfg)
	require.NoError(t, err)
	err = ext.Start(context.Background(), testHost{})
	require.EqualError(t, err, `rules: promql extension "promql/other" not found`)
	require.NoError(t, ext.Shutdown(context.Background()))

	err = ext.Start(context.Background(), testHost{cfg.PromQL: ext})
	require.ErrorContains(t, err, `rules: extension "promql/other" is not a metricstor promql extension`)
}
