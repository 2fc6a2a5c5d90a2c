package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/httputil"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	mrules "github.com/metricstor/metricstor/rules"
	mstorage "github.com/metricstor/metricstor/storage"
)

// prometheusAPIVersion is the Prometheus release whose HTTP API and PromQL engine this extension
// serves: github.com/prometheus/prometheus v0.316.0 is Prometheus 3.16.
const prometheusAPIVersion = "3.16.0"

// apiPrefix is where Prometheus serves its HTTP API.
const apiPrefix = "/api/v1"

// defaultSubqueryStep is the step of a subquery written without one, Prometheus's default
// evaluation_interval (the rules extension has its own; like Prometheus, an API query does not
// follow it).
const defaultSubqueryStep = time.Minute

// apiSettings is what newAPIHandler needs besides the store.
type apiSettings struct {
	cfg     *Config
	logger  *slog.Logger
	version string       // Metricstor's version for /api/v1/status/buildinfo
	ready   *atomic.Bool // false before Start finished and once Shutdown began
	// rules is the state of the rules extension to serve at the time of a request (an empty
	// one when no rules extension runs). Nil serves nothing.
	rules func() mrules.State
}

// queryAPI is the HTTP handler of the extension and the engine behind it.
type queryAPI struct {
	handler http.Handler
	engine  *promql.Engine
}

// newAPIHandler builds Prometheus's web/api/v1 API, a promql.Engine with the configured limits,
// our own /api/v1/metadata and the /-/healthy and /-/ready probes, all over store.
func newAPIHandler(store mstorage.Store, set apiSettings) *queryAPI {
	// A registry per instance: Prometheus's code registers metrics and must not collide with a
	// second instance or with the collector's own registry. /api/v1/status/self_metrics serves it.
	reg := prometheus.NewRegistry()
	p := parser.NewParser(parser.Options{})

	engine, served := newEngines(set.cfg, set.logger, reg, p)

	queryable := notReadyQueryable{store}
	// Clients such as Grafana read `version` to decide which Prometheus features they may use,
	// so it names the Prometheus API this extension serves (the engine and API of
	// prometheusAPIVersion); Metricstor's own version is in `branch`, as "metricstor/<version>".
	buildInfo := &v1.PrometheusVersion{
		Version:   prometheusAPIVersion,
		Branch:    "metricstor/" + set.version,
		GoVersion: runtime.Version(),
	}
	startTime := time.Now()
	configFunc := func() config.Config { return config.DefaultConfig }

	api := v1.NewAPI(
		limitPoints(served, set.cfg.MaxPointsPerRangeQuery),
		queryable,
		nil, // appender: remote write and OTLP are received by the pipeline, not here
		store,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		func(context.Context) v1.AlertmanagerRetriever { return rulesOf(set) },
		configFunc,
		map[string]string{},
		v1.GlobalURLOptions{ListenAddress: set.cfg.NetAddr.Endpoint, Host: set.cfg.NetAddr.Endpoint, Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f }, // readiness is checked in front of the router
		newAdminAPI(store, reg),
		store.Dir(), // the API writes snapshots under <dir>/snapshots
		set.cfg.EnableAdminAPI,
		false, // search API off
		0,
		set.logger.With("component", "api"),
		func(context.Context) v1.RulesRetriever { return rulesOf(set) },
		// A concurrency limit of 0 would make every remote read wait forever (a gate of size 0).
		set.cfg.RemoteRead.SampleLimit, set.cfg.RemoteRead.ConcurrentLimit, set.cfg.RemoteRead.MaxBytesInFrame,
		false, // not an agent
		// CORS is confighttp's job (`cors:`); this pattern matches no Origin, so Prometheus's own
		// CORS code never allows one.
		regexp.MustCompile("^$"),
		func() (v1.RuntimeInfo, error) { return runtimeInfo(startTime, store), nil },
		buildInfo,
		func() []notifications.Notification { return []notifications.Notification{} },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		reg,
		reg,
		nil,   // default stats renderer
		false, // remote write receiving off
		nil,
		false, false, false, // OTLP receiving off
		set.cfg.LookbackDelta,
		false,              // type and unit labels off
		false,              // append metadata off
		notImplementedCode, // Prometheus's HTTP codes, and 501 for delete_series
		nil,                // no feature registry
		v1.OpenAPIOptions{},
		p,
		false, // query cost estimation off
		set.cfg.Timeout,
	)

	// Prometheus's JSON, written into a buffer sized for the answer (see sizedJSONCodec).
	api.ClearCodecs()
	api.InstallCodec(sizedJSONCodec{})
	router := route.New().WithPrefix(apiPrefix)
	api.Register(router)

	md := &metadataHandler{store: store, logger: set.logger}
	mux := http.NewServeMux()
	mux.Handle("GET "+apiPrefix+"/metadata", md)
	// Compressed when the client accepts it, as Prometheus serves /federate.
	mux.Handle("GET /federate", httputil.CompressionHandler{
		Handler: newFederateHandler(queryable, p, set.cfg.LookbackDelta, set.logger.With("component", "federate"), reg),
	})
	mux.HandleFunc("/federate", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "/federate takes GET only", http.StatusMethodNotAllowed)
	})
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "Metricstor is Healthy.\n")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "Metricstor is Ready.\n")
	})
	// The big answers, gzipped faster than Prometheus's handler does (see gzipAnswers).
	mux.Handle(apiPrefix+"/query", gzipAnswers{router})
	mux.Handle(apiPrefix+"/query_range", gzipAnswers{router})
	mux.Handle("/", router)

	// The query page is served beside the API, in front of the readiness gate (see registerUI).
	top := http.NewServeMux()
	registerUI(top)
	top.Handle("/", readyGate(set.ready, mux))
	return &queryAPI{handler: top, engine: engine}
}

// newEngines returns Prometheus's PromQL engine with the configured limits (the rules
// extension's, and the API's for what it does not split) and the engine the API serves: the
// same, splitting long range queries into range_query_parallelism parts (see splitEngine). The
// query benchmark builds its engines here too, so that it measures what is served.
func newEngines(cfg *Config, logger *slog.Logger, reg prometheus.Registerer, p parser.Parser) (*promql.Engine, promql.QueryEngine) {
	// One tracker: the parts of a query take max_concurrency slots as queries do.
	tracker := newConcurrencyLimiter(cfg.MaxConcurrency)
	whole := newPromEngine(cfg, logger.With("component", "query_engine"), reg, p, tracker, cfg.MaxSamples)
	// The range queries with functions over ranges are evaluated on windows (windows.go) by
	// engines of their own, whose parser rewrites those calls. Their metrics, and those of the
	// parts' engines below, are Prometheus's prometheus_engine_* under a prefix of their own,
	// so that prometheus_engine_* counts queries.
	wp := windowParser{p}
	windows := newPromEngine(cfg, logger.With("component", "query_engine_windows"),
		prometheus.WrapRegistererWithPrefix("metricstor_range_query_windows_", reg), wp, tracker, cfg.MaxSamples)
	parts := cfg.rangeQueryParts()
	if parts < 2 {
		// Whole queries only, still telling the store their steps (see gridQuery).
		return whole, &splitEngine{Engine: whole, windows: windows, parts: 1, maxSamples: cfg.MaxSamples, parser: p}
	}
	// The parts of a query run at the same time and together hold at most max_samples, as the
	// whole query would: a part over its share fails, and the whole query runs instead.
	part := newPromEngine(cfg, logger.With("component", "query_engine_parts"),
		prometheus.WrapRegistererWithPrefix("metricstor_range_query_part_", reg), p, tracker, max(1, cfg.MaxSamples/parts))
	windowPart := newPromEngine(cfg, logger.With("component", "query_engine_windows_parts"),
		prometheus.WrapRegistererWithPrefix("metricstor_range_query_windows_part_", reg), wp, tracker, max(1, cfg.MaxSamples/parts))
	return whole, &splitEngine{Engine: whole, part: part, windows: windows, windowPart: windowPart,
		parts: parts, minSteps: minStepsPerPart, maxSamples: cfg.MaxSamples, parser: p}
}

// newPromEngine is Prometheus's engine with the configured limits, maxSamples and tracker. Its
// Close only closes the tracker, which is a no-op for ours. Names are dropped at once and start
// timestamps are not read (EnableDelayedNameRemoval, UseStartTimestamps off), as Prometheus's
// defaults have it and as the windows (windows.go) need.
func newPromEngine(cfg *Config, logger *slog.Logger, reg prometheus.Registerer, p parser.Parser, tracker promql.QueryTracker, maxSamples int) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:             logger,
		Reg:                reg,
		MaxSamples:         maxSamples,
		Timeout:            cfg.Timeout,
		ActiveQueryTracker: tracker,
		LookbackDelta:      cfg.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return defaultSubqueryStep.Milliseconds()
		},
		// Always on in Prometheus 3.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               p,
	})
}

// readyGate answers 503 like Prometheus does while the extension is not (or no longer) ready;
// only /-/healthy passes through.
func readyGate(ready *atomic.Bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() && r.URL.Path != "/-/healthy" {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "Service Unavailable")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func runtimeInfo(start time.Time, store mstorage.Store) v1.RuntimeInfo {
	cwd, _ := os.Getwd()
	host, _ := os.Hostname()
	return v1.RuntimeInfo{
		StartTime:           start,
		CWD:                 cwd,
		Hostname:            host,
		ServerTime:          time.Now().UTC(),
		ReloadConfigSuccess: true,
		LastConfigTime:      start,
		GoroutineCount:      runtime.NumGoroutine(),
		GOMAXPROCS:          runtime.GOMAXPROCS(0),
		GOGC:                os.Getenv("GOGC"),
		GODEBUG:             os.Getenv("GODEBUG"),
		StorageRetention:    store.Retention(),
	}
}

// notReadyQueryable marks the store's ErrNotRunning as tsdb.ErrNotReady, which Prometheus's API
// answers with 503 errorType unavailable, as it does while its own TSDB is not open.
type notReadyQueryable struct {
	promstorage.SampleAndChunkQueryable
}

func notReady(err error) error {
	if errors.Is(err, mstorage.ErrNotRunning) {
		return fmt.Errorf("%w: %w", tsdb.ErrNotReady, err)
	}
	return err
}

func (q notReadyQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	qr, err := q.SampleAndChunkQueryable.Querier(mint, maxt)
	return qr, notReady(err)
}

func (q notReadyQueryable) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	qr, err := q.SampleAndChunkQueryable.ChunkQuerier(mint, maxt)
	return qr, notReady(err)
}

// noTargets serves /api/v1/targets and /api/v1/scrape_pools: Metricstor scrapes nothing.
type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePoolConfig(name string) (*config.ScrapeConfig, error) {
	return nil, fmt.Errorf("scrape pool %q not found: metricstor does not scrape", name)
}

func rulesOf(set apiSettings) mrules.State {
	if set.rules == nil {
		return noRules{}
	}
	return set.rules()
}

// noRules serves /api/v1/rules, /api/v1/alerts and /api/v1/alertmanagers while no rules
// extension runs: no rules, no alerts, no Alertmanagers.
type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return []*rules.Group{} }
func (noRules) AlertingRules() []*rules.AlertingRule { return []*rules.AlertingRule{} }
func (noRules) Alertmanagers() []*url.URL            { return []*url.URL{} }
func (noRules) DroppedAlertmanagers() []*url.URL     { return []*url.URL{} }

// errUnsupported is returned by the WAL replay and block endpoints, which describe Prometheus's
// own TSDB; the metricstor store reports its state through its own telemetry.
var errUnsupported = errors.New("not supported by metricstor: the store is the metricstor storage extension, not a Prometheus TSDB")

// adminAPI serves the admin endpoints (when enable_admin_api is on) and the TSDB status endpoints
// of Prometheus's API over the store.
type adminAPI struct {
	store mstorage.Store
	// headChunks is Prometheus's prometheus_tsdb_head_chunks, which /api/v1/status/tsdb reads
	// from the API's gatherer right after Stats (it answers chunkCount from it, and a
	// meaningless number without it). Stats sets it, so it is as of the last status request:
	// counting the open heads on every gather would walk every series per scrape.
	headChunks prometheus.Gauge
}

func newAdminAPI(store mstorage.Store, reg prometheus.Registerer) adminAPI {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "prometheus_tsdb_head_chunks",
		Help: "Open head chunks of the metricstor store's in-memory series, as of the last /api/v1/status/tsdb request.",
	})
	reg.MustRegister(g)
	return adminAPI{store: store, headChunks: g}
}

// Snapshot writes the store's snapshot to dir, which Prometheus's API has created (empty) under
// <storage directory>/snapshots.
func (a adminAPI) Snapshot(dir string, withHead bool) error { return a.store.Snapshot(dir, withHead) }

// Delete is not implemented: the store has no tombstones, and deleting samples would rewrite
// the stored chunks of every matching series in every partition of the range (and the heads in
// memory and the sample log) while writes go on.
func (adminAPI) Delete(context.Context, int64, int64, ...*labels.Matcher) error {
	return errDeleteNotImplemented
}

// CleanTombstones has nothing to do: the store keeps no tombstones (retention drops whole
// partitions).
func (adminAPI) CleanTombstones() error { return nil }

// Stats serves /api/v1/status/tsdb from the store's head: the series it holds in memory, those
// appended to within about an hour of the newest sample (Prometheus's head block covers the last
// 2-3 hours).
func (a adminAPI) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	st, err := a.store.HeadStats(statsByLabelName, limit)
	if err != nil {
		return nil, notReady(err)
	}
	a.headChunks.Set(float64(st.ChunkCount))
	return &tsdb.Stats{
		NumSeries:         st.NumSeries,
		MinTime:           st.MinTime,
		MaxTime:           st.MaxTime,
		IndexPostingStats: st.Postings,
	}, nil
}

func (adminAPI) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, errUnsupported
}
func (adminAPI) BlockMetas() ([]tsdb.BlockMeta, error) { return nil, errUnsupported }

// errNotImplemented marks an error that the API answers with 501 Not Implemented (errorType
// internal, Prometheus's type for a failed admin call) instead of Prometheus's 500.
var errNotImplemented = errors.New("not implemented")

var errDeleteNotImplemented = fmt.Errorf("%w: delete_series is not supported by metricstor: the store has no tombstones, "+
	"and deleting samples would rewrite every stored chunk of the matching series; "+
	"data leaves by retention (retention, retention_size of the storage extension), "+
	"and series can be dropped before storage with the filter processor", errNotImplemented)

// notImplementedCode is the API's OverrideErrorCode: 501 for errNotImplemented, Prometheus's
// code for every other error. OverrideErrorCode's first parameter has an unexported type, which
// only type inference can name: the generic helper takes it from v1.ErrorNone.
var notImplementedCode v1.OverrideErrorCode = overrideFor(v1.ErrorNone)

func overrideFor[E any](E) func(E, error) (int, bool) {
	return func(_ E, err error) (int, bool) {
		if errors.Is(err, errNotImplemented) {
			return http.StatusNotImplemented, true
		}
		return 0, false
	}
}
