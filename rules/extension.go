package rules // import "github.com/metricstor/metricstor/rules"

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.uber.org/zap"

	"go.uber.org/zap/exp/zapslog"
)

// Prometheus's defaults for what this extension does not configure.
const (
	outageTolerance       = time.Hour        // --rules.alert.for-outage-tolerance
	forGracePeriod        = 10 * time.Minute // --rules.alert.for-grace-period
	notificationQueueSize = 10000            // --alertmanager.notification-queue-capacity
)

// rulesExtension evaluates rule files on the promql extension's engine and store.
type rulesExtension struct {
	cfg      *Config            // never changes after construction
	settings extension.Settings // never changes after construction

	// Set by Start, read by Shutdown; the collector never calls them concurrently.
	query    QueryAPI
	manager  *promrules.Manager
	notifier *notifier.Manager
	tel      *telemetry
	cancel   context.CancelFunc // stops the rule evaluations' context and the file check
	wg       sync.WaitGroup     // the manager's, the notifier's and the file check's goroutines

	// Used by Start and then only by the file check goroutine.
	extLabels labels.Labels
	extURL    string
	loaded    [sha256.Size]byte // fingerprint of the rule files last loaded (or tried)
	// seen is the fingerprint of the last check when it differed from loaded: a change is loaded
	// only once two checks in a row see it, so that a file caught while it is being written (an
	// editor or `cat >` truncates it first) is not loaded half-written or empty.
	seen [sha256.Size]byte
}

var _ extensioncapabilities.Dependent = (*rulesExtension)(nil)

func newExtension(cfg *Config, set extension.Settings) *rulesExtension {
	return &rulesExtension{cfg: cfg, settings: set}
}

// Dependencies makes the collector start the promql extension (and so the store) before this one
// and stop it after.
func (e *rulesExtension) Dependencies() []component.ID {
	return []component.ID{e.cfg.PromQL}
}

// Start loads the rule files (an invalid file fails Start, as it fails Prometheus's start),
// starts the notifier and the rule manager and hands their state to the promql extension.
func (e *rulesExtension) Start(_ context.Context, host component.Host) error {
	qs, err := findQueryAPI(host, e.cfg.PromQL)
	if err != nil {
		return err
	}
	engine, store, apiURL := qs.Engine(), qs.Store(), qs.ExternalURL()
	if engine == nil || store == nil || apiURL == nil {
		return fmt.Errorf("rules: promql extension %q has not started", e.cfg.PromQL)
	}
	e.extURL = apiURL.String()
	if e.cfg.ExternalURL != "" {
		e.extURL = e.cfg.ExternalURL
	}
	extURL, err := url.Parse(e.extURL)
	if err != nil { // Validate checked it
		return fmt.Errorf("rules: external_url: %w", err)
	}
	e.extLabels = labels.FromMap(e.cfg.ExternalLabels)

	logger := slog.New(zapslog.NewHandler(e.settings.Logger.Core(), zapslog.WithCaller(true)))
	p := parser.NewParser(parser.Options{})
	// Prometheus's own error for an invalid file names the file, the group, the rule and the line.
	if err := promrules.ParseFiles(e.cfg.RuleFiles, model.UTF8Validation, p, logger); err != nil {
		return fmt.Errorf("rules: rule_files: %w", err)
	}
	files, fingerprint, err := ruleFiles(e.cfg.RuleFiles)
	if err != nil {
		return fmt.Errorf("rules: rule_files: %w", err)
	}

	// A registry per instance: Prometheus's packages register their metrics and must not collide
	// with another instance (a SIGHUP restarts every component) or the collector's registry.
	reg := prometheus.NewRegistry()

	nm, tsets, err := e.newNotifier(logger, reg)
	if err != nil {
		return err
	}
	tel, err := newTelemetry(e.settings.TelemetrySettings, reg)
	if err != nil {
		return fmt.Errorf("rules: telemetry: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr := promrules.NewManager(&promrules.ManagerOptions{
		NameValidationScheme:   model.UTF8Validation,
		ExternalURL:            extURL,
		QueryFunc:              promrules.EngineQueryFunc(engine, store),
		NotifyFunc:             promrules.SendAlerts(nm, e.extURL),
		Context:                ctx,
		AppendableV2:           store,
		Queryable:              store, // restores the `for` state of alerts from ALERTS_FOR_STATE
		Logger:                 logger.With("component", "rule manager"),
		Registerer:             reg,
		OutageTolerance:        outageTolerance,
		ForGracePeriod:         forGracePeriod,
		ResendDelay:            e.cfg.ResendDelay,
		DefaultRuleQueryOffset: func() time.Duration { return e.cfg.QueryOffset },
		Parser:                 p,
	})
	if err := mgr.Update(e.cfg.EvaluationInterval, files, e.extLabels, e.extURL, nil); err != nil {
		cancel()
		_ = tel.shutdown()
		return fmt.Errorf("rules: rule_files: %w", err)
	}
	e.loaded = fingerprint
	e.query, e.manager, e.notifier, e.tel, e.cancel = qs, mgr, nm, tel, cancel

	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		nm.Run(tsets)
	}()
	go func() {
		defer e.wg.Done()
		mgr.Run()
	}()
	if e.cfg.FileCheckInterval > 0 {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.checkFiles(ctx)
		}()
	}
	qs.ServeRules(ruleState{manager: mgr, notifier: nm})

	groups := mgr.RuleGroups()
	e.settings.Logger.Info("Rule evaluation started",
		zap.Int("rule_files", len(files)),
		zap.Int("groups", len(groups)),
		zap.Int("alertmanagers", len(e.cfg.Alertmanagers)),
		zap.String("external_url", e.extURL))
	return nil
}

// newNotifier builds the notifier with one Alertmanager set per configured URL, and the channel
// of target groups that tells it those Alertmanagers (service discovery in Prometheus).
func (e *rulesExtension) newNotifier(logger *slog.Logger, reg prometheus.Registerer) (*notifier.Manager, chan map[string][]*targetgroup.Group, error) {
	nm := notifier.NewManager(&notifier.Options{
		QueueCapacity:   notificationQueueSize,
		DrainOnShutdown: true,
		ExternalLabels:  e.extLabels,
		Registerer:      reg,
	}, model.UTF8Validation, logger.With("component", "notifier"))

	pcfg := &promconfig.Config{GlobalConfig: promconfig.GlobalConfig{ExternalLabels: e.extLabels}}
	groups := map[string][]*targetgroup.Group{}
	for i, raw := range e.cfg.Alertmanagers {
		u, err := url.Parse(raw)
		if err != nil { // Validate checked it
			return nil, nil, fmt.Errorf("rules: alertmanagers: %w", err)
		}
		amc := promconfig.DefaultAlertmanagerConfig
		amc.Scheme = u.Scheme
		amc.PathPrefix = u.Path
		amc.Timeout = model.Duration(e.cfg.AlertmanagerTimeout)
		pcfg.AlertingConfig.AlertmanagerConfigs = append(pcfg.AlertingConfig.AlertmanagerConfigs, &amc)
		// The key ApplyConfig gives the i-th Alertmanager config (AlertmanagerConfigs.ToMap).
		groups[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{{
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
			Source:  raw,
		}}
	}
	if err := nm.ApplyConfig(pcfg); err != nil {
		return nil, nil, fmt.Errorf("rules: alertmanagers: %w", err)
	}
	// Buffered: Run reads it once started; it is never closed (Run returns on Stop).
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- groups
	return nm, tsets, nil
}

// checkFiles reloads the rule files whenever the files the globs match, or their contents, change.
// A file that fails to load leaves the previous rules running (Prometheus's behaviour on reload);
// the error is logged, and the same content is not tried again until it changes.
func (e *rulesExtension) checkFiles(ctx context.Context) {
	ticker := time.NewTicker(e.cfg.FileCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		files, fingerprint, err := ruleFiles(e.cfg.RuleFiles)
		if err != nil {
			e.settings.Logger.Error("Reading rule files failed", zap.Error(err))
			continue
		}
		if fingerprint == e.loaded {
			e.seen = fingerprint
			continue
		}
		if fingerprint != e.seen {
			e.seen = fingerprint // settled at the next check if it stays the same
			continue
		}
		e.loaded = fingerprint
		err = e.manager.Update(e.cfg.EvaluationInterval, files, e.extLabels, e.extURL, nil)
		e.tel.reloaded(err == nil)
		if err != nil {
			// The rule manager logged each error, naming file and rule.
			e.settings.Logger.Error("Reloading rule files failed; the previous rules keep running", zap.Error(err))
			continue
		}
		e.settings.Logger.Info("Rule files reloaded", zap.Int("rule_files", len(files)),
			zap.Int("groups", len(e.manager.RuleGroups())))
	}
}

// ruleFiles expands the globs and fingerprints the matched files' names and contents.
func ruleFiles(patterns []string) ([]string, [sha256.Size]byte, error) {
	var files []string
	for _, pat := range patterns {
		m, err := filepath.Glob(pat)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("invalid glob %q: %w", pat, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, [sha256.Size]byte{}, err
		}
		fmt.Fprintf(h, "%q %d\n", f, len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return files, sum, nil
}

// Shutdown detaches the API, stops rule evaluation, then the notifier (which sends what it
// queued first, as Prometheus does). It is safe to call without a prior Start.
func (e *rulesExtension) Shutdown(context.Context) error {
	if e.manager == nil {
		return nil
	}
	e.query.ServeRules(nil)
	// Stopping the manager waits for running evaluations; the notifier must stop after it, as an
	// evaluation may still send.
	e.manager.Stop()
	e.cancel()
	e.notifier.Stop()
	e.wg.Wait()
	e.manager = nil
	return e.tel.shutdown()
}

// findQueryAPI looks the promql extension up by id and checks that it offers a QueryAPI.
func findQueryAPI(host component.Host, id component.ID) (QueryAPI, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("rules: promql extension %q not found", id)
	}
	qs, ok := ext.(QueryAPI)
	if !ok {
		return nil, fmt.Errorf("rules: extension %q is not a metricstor promql extension (it is a %T)", id, ext)
	}
	return qs, nil
}

// ruleState is what the API serves: the rule manager's groups and alerting rules, the
// notifier's Alertmanagers.
type ruleState struct {
	manager  *promrules.Manager
	notifier *notifier.Manager
}

func (s ruleState) RuleGroups() []*promrules.Group           { return s.manager.RuleGroups() }
func (s ruleState) AlertingRules() []*promrules.AlertingRule { return s.manager.AlertingRules() }
func (s ruleState) Alertmanagers() []*url.URL                { return nonNil(s.notifier.Alertmanagers()) }
func (s ruleState) DroppedAlertmanagers() []*url.URL {
	return nonNil(s.notifier.DroppedAlertmanagers())
}

// nonNil makes an empty list serve as [] rather than null.
func nonNil(u []*url.URL) []*url.URL {
	if u == nil {
		return []*url.URL{}
	}
	return u
}
