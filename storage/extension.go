package storage

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	promstorage "github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/internal/passthrough"
	compmetadata "github.com/metricstor/metricstor/storage/internal/metadata"
	"github.com/metricstor/metricstor/storage/internal/tsdb"
)

// storageExtension owns the database between Start and Shutdown.
type storageExtension struct {
	cfg *Config
	set extension.Settings

	mu           sync.RWMutex
	db           *tsdb.DB // nil before Start and after Shutdown
	registration metric.Registration
	memLimit     memoryLimit   // the runtime's limit as Start found it, put back by Shutdown
	stopWatch    chan struct{} // closed by Shutdown to stop the headroom watch
	released     sync.Once     // the executable's startup pages, dropped after the first Ready
	releaseAfter time.Duration // how long after Ready (releaseDelay; tests shorten it)
	releasing    sync.WaitGroup

	// routes tells the remote_write receiver which exporter takes its series directly (direct.go).
	routes passthrough.Routes
}

// headroomInterval is how often the live heap is compared with the memory limit.
const headroomInterval = 30 * time.Second

// releaseDelay is how long after the pipelines are ready the executable's startup pages are
// dropped (exepages.go): none. Clients write and query as soon as the collector is ready (the
// query API's /-/ready says so). The heap grows to its limit within a second of load, so a
// release a second later left the peak RSS holding both (50 MB of startup pages); and a
// release a moment later fell on the first requests' heels: after a restart the second run of
// the server benchmark's first range query read the code pages it had just used from disk
// again (87-133 ms against 52-78 for the runs around it). Released at once, the first requests
// read the pages they need, which they would do anyway after a start. The collector still logs
// and installs its signal handlers after Ready returns, so Ready does not wait for the
// release; what they touch afterwards comes back a page at a time.
const releaseDelay = 0

var (
	_ extension.Extension = (*storageExtension)(nil)
	_ Store               = (*storageExtension)(nil)

	_ extensioncapabilities.PipelineWatcher = (*storageExtension)(nil)
)

func newExtension(cfg *Config, set extension.Settings) *storageExtension {
	return &storageExtension{cfg: cfg, set: set, releaseAfter: releaseDelay}
}

// Start opens the database; a directory locked by another process fails here.
func (e *storageExtension) Start(context.Context, component.Host) error {
	size, fraction, err := parseRetentionSize(e.cfg.RetentionSize)
	if err != nil {
		return fmt.Errorf("metricstor storage: %w", err)
	}
	budget, lowered := fitBudget(e.cfg.MemoryLimitMiB, cgroupMemoryLimit("/sys/fs/cgroup", "/proc/self/cgroup"))
	if lowered {
		e.set.Logger.Warn("memory_limit_mib does not fit in the cgroup's memory limit: using 90 % of that instead",
			zap.Int("memory_limit_mib", e.cfg.MemoryLimitMiB), zap.Int64("budget_bytes", budget))
	}
	mem := sizeMemory(budget, e.cfg.CacheSizeMiB)
	db, err := tsdb.Open(e.cfg.Directory, tsdb.Options{
		Retention:             time.Duration(e.cfg.Retention),
		RetentionSize:         size,
		RetentionSizeFraction: fraction,
		Limits: tsdb.Limits{
			LabelsPerSeries:  e.cfg.Limits.LabelsPerSeries,
			LabelNameLength:  e.cfg.Limits.LabelNameLength,
			LabelValueLength: e.cfg.Limits.LabelValueLength,
			ActiveSeries:     e.cfg.Limits.ActiveSeries,
		},
		PartitionDuration: time.Duration(e.cfg.PartitionDuration),
		OutOfOrderWindow:  time.Duration(e.cfg.OutOfOrderWindow),
		CacheSize:         mem.cache,
		MemTableSize:      mem.memTable,
		SyncCommits:       e.cfg.SyncCommits,
		MinFreeSpace:      minFreeSpace(e.cfg.MinFreeSpaceMiB),
		Logger:            e.set.Logger,
	})
	if err != nil {
		return fmt.Errorf("metricstor storage: %w", err)
	}
	if err := db.CheckRetentionSize(); err != nil {
		_ = db.Close()
		return fmt.Errorf("metricstor storage: %w", err)
	}
	reg, err := registerTelemetry(e.set.TelemetrySettings, db)
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("metricstor storage: telemetry: %w", err)
	}
	ml := applyMemoryLimit(mem.limit, mem, e.set.Logger)
	stop := make(chan struct{})
	watch := &headroomWatch{logger: e.set.Logger, read: readHeap, series: db.HeadSeries}
	go watch.run(headroomInterval, stop)
	e.mu.Lock()
	e.db, e.registration, e.memLimit, e.stopWatch = db, reg, ml, stop
	e.mu.Unlock()
	return nil
}

// Shutdown waits for in-flight commits and queries, then closes the database and releases its
// directory lock. It is safe to call without Start.
func (e *storageExtension) Shutdown(context.Context) error {
	e.mu.Lock()
	db, reg, ml, stop := e.db, e.registration, e.memLimit, e.stopWatch
	e.db, e.registration, e.memLimit, e.stopWatch = nil, nil, memoryLimit{}, nil
	e.mu.Unlock()
	if db == nil {
		return nil
	}
	close(stop)
	e.releasing.Wait()
	ml.restore()
	if reg != nil {
		_ = reg.Unregister()
	}
	return db.Close()
}

// Ready drops the executable's pages that only starting the collector used (exepages.go), once,
// releaseAfter later (at once by default): the pipelines are built and the receivers started,
// so what startup touched is behind. Shutdown before then cancels it.
func (e *storageExtension) Ready() error {
	e.released.Do(func() {
		// Added under mu while the extension runs, so before Shutdown's Wait.
		e.mu.Lock()
		stop := e.stopWatch
		if stop != nil {
			e.releasing.Add(1)
		}
		e.mu.Unlock()
		if stop == nil {
			return // not started, or stopped
		}
		go func() {
			defer e.releasing.Done()
			t := time.NewTimer(e.releaseAfter)
			defer t.Stop()
			select {
			case <-stop:
				return
			case <-t.C:
			}
			released, err := releaseExecutablePages()
			if err != nil {
				// Nothing is lost: at worst pages stay resident, as without the release.
				e.set.Logger.Debug("Releasing the executable's startup pages failed", zap.Error(err))
				return
			}
			if released > 0 {
				e.set.Logger.Info("Released the executable's pages that only startup used; pages touched again are read one at a time",
					zap.Int64("released_bytes", released))
			}
		}()
	})
	return nil
}

// NotReady is part of extensioncapabilities.PipelineWatcher; the store has nothing to do then.
func (e *storageExtension) NotReady() error { return nil }

// minFreeSpace turns min_free_space_mib into tsdb.Options.MinFreeSpace: 0 keeps the default,
// -1 (off) becomes negative.
func minFreeSpace(mib int) int64 {
	if mib < 0 {
		return -1
	}
	return int64(mib) << 20
}

func (e *storageExtension) current() *tsdb.DB {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.db
}

// AppenderV2 implements Store.
func (e *storageExtension) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	if db := e.current(); db != nil {
		return db.AppenderV2(ctx)
	}
	return notRunningAppender{}
}

// Querier implements Store.
func (e *storageExtension) Querier(mint, maxt int64) (promstorage.Querier, error) {
	if db := e.current(); db != nil {
		return db.Querier(mint, maxt)
	}
	return nil, ErrNotRunning
}

// ChunkQuerier implements Store.
func (e *storageExtension) ChunkQuerier(mint, maxt int64) (promstorage.ChunkQuerier, error) {
	if db := e.current(); db != nil {
		return db.ChunkQuerier(mint, maxt)
	}
	return nil, ErrNotRunning
}

// ExemplarQuerier implements Store.
func (e *storageExtension) ExemplarQuerier(ctx context.Context) (promstorage.ExemplarQuerier, error) {
	if db := e.current(); db != nil {
		return db.ExemplarQuerier(ctx)
	}
	return nil, ErrNotRunning
}

// MetricMetadata implements Store.
func (e *storageExtension) MetricMetadata(_ context.Context, metric string) (map[string][]metadata.Metadata, error) {
	db := e.current()
	if db == nil {
		return nil, ErrNotRunning
	}
	out := map[string][]metadata.Metadata{}
	for name, m := range db.Metadata(metric) {
		out[name] = []metadata.Metadata{m}
	}
	return out, nil
}

// Dir implements Store.
func (e *storageExtension) Dir() string { return e.cfg.Directory }

// Snapshot implements Store.
func (e *storageExtension) Snapshot(dir string, withHead bool) error {
	db := e.current()
	if db == nil {
		return ErrNotRunning
	}
	return db.Snapshot(dir, withHead)
}

// HeadStats implements Store.
func (e *storageExtension) HeadStats(statsByLabelName string, limit int) (*HeadStats, error) {
	db := e.current()
	if db == nil {
		return nil, ErrNotRunning
	}
	return db.HeadStats(statsByLabelName, limit)
}

// Retention implements Store, from the configuration (which Validate has checked).
func (e *storageExtension) Retention() string {
	var parts []string
	if e.cfg.Retention > 0 {
		parts = append(parts, e.cfg.Retention.String())
	}
	size, fraction, err := parseRetentionSize(e.cfg.RetentionSize)
	switch {
	case err != nil:
	case size > 0:
		parts = append(parts, units.Base2Bytes(size).String())
	case fraction > 0:
		// As configured: fraction*100 may not print back as the percentage given (7% -> 7.000000000000001).
		parts = append(parts, strings.ReplaceAll(strings.TrimSpace(e.cfg.RetentionSize), " ", ""))
	}
	return strings.Join(parts, " or ")
}

type notRunningAppender struct{}

func (notRunningAppender) Append(promstorage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, promstorage.AppendV2Options) (promstorage.SeriesRef, error) {
	return 0, ErrNotRunning
}
func (notRunningAppender) Commit() error   { return ErrNotRunning }
func (notRunningAppender) Rollback() error { return nil }

// registerTelemetry publishes the database's counters as the extension's own metrics.
func registerTelemetry(set component.TelemetrySettings, db *tsdb.DB) (metric.Registration, error) {
	m := set.MeterProvider.Meter(compmetadata.ScopeName)
	var errs []error
	counter := func(name, desc, unit string) metric.Int64ObservableCounter {
		c, err := m.Int64ObservableCounter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc, unit string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return g
	}
	appended := counter("metricstor_storage_samples_appended", "Samples committed to the store, out-of-order merges included.", "{sample}")
	ooo := counter("metricstor_storage_samples_out_of_order", "Samples accepted older than their series' newest sample and merged into stored chunks.", "{sample}")
	rejected := counter("metricstor_storage_samples_rejected", "Samples refused one by one, by reason.", "{sample}")
	created := counter("metricstor_storage_series_created", "Series stored for the first time.", "{series}")
	exemplars := counter("metricstor_storage_exemplars_appended", "Exemplars committed to the store.", "{exemplar}")
	dropped := counter("metricstor_storage_partitions_dropped", "Time partitions dropped, by reason (retention, retention_size).", "{partition}")
	checkpoints := counter("metricstor_storage_checkpoints", "Checkpoints, each writing the open head chunks out and deleting the sample log.", "{checkpoint}")
	merged := counter("metricstor_storage_chunks_merged", "Closed chunks merged into the chunk before them once their series' head moved past their 2 h window.", "{chunk}")
	head := gauge("metricstor_storage_head_series", "Series held in memory (appended to within the last hour or so).", "{series}")
	parts := gauge("metricstor_storage_partitions", "Time partitions that hold data.", "{partition}")
	disk := gauge("metricstor_storage_disk_usage", "Bytes the database uses on disk: Pebble's files and the sample log.", "By")
	sizeLimit := gauge("metricstor_storage_retention_size_limit", "The size retention in bytes as last computed (a percentage follows the filesystem's size); 0 when there is none.", "By")
	writable := gauge("metricstor_storage_writable", "1 when the store accepts writes, 0 while it refuses them (disk full, read-only or gone, I/O errors); the log says why.", "1")
	refused := counter("metricstor_storage_commits_refused", "Commits refused because the store could not write (answered as retryable errors).", "{commit}")
	memLimit := gauge("metricstor_storage_memory_limit", "The Go runtime's soft memory limit in bytes: memory_limit_mib, or GOMEMLIMIT from the environment; 0 when there is none.", "By")
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	reason := func(r string) metric.ObserveOption { return metric.WithAttributes(attribute.String("reason", r)) }
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := db.Stats()
		o.ObserveInt64(appended, st.SamplesAppended.Load())
		o.ObserveInt64(ooo, st.SamplesOutOfOrder.Load())
		o.ObserveInt64(rejected, st.RejectedOutOfOrder.Load(), reason("out_of_order"))
		o.ObserveInt64(rejected, st.RejectedTooOld.Load(), reason("too_old"))
		o.ObserveInt64(rejected, st.RejectedDuplicate.Load(), reason("duplicate"))
		o.ObserveInt64(rejected, st.RejectedInvalid.Load(), reason("invalid"))
		o.ObserveInt64(rejected, st.RejectedLimit.LabelsPerSeries.Load(), reason("labels_per_series_limit"))
		o.ObserveInt64(rejected, st.RejectedLimit.LabelNameLength.Load(), reason("label_name_length_limit"))
		o.ObserveInt64(rejected, st.RejectedLimit.LabelValueLength.Load(), reason("label_value_length_limit"))
		o.ObserveInt64(rejected, st.RejectedLimit.ActiveSeries.Load(), reason("active_series_limit"))
		o.ObserveInt64(created, st.SeriesCreated.Load())
		o.ObserveInt64(exemplars, st.ExemplarsAppended.Load())
		bySize := st.PartitionsDroppedBySize.Load()
		o.ObserveInt64(dropped, st.PartitionsDropped.Load()-bySize, reason("retention"))
		o.ObserveInt64(dropped, bySize, reason("retention_size"))
		o.ObserveInt64(checkpoints, st.Checkpoints.Load())
		o.ObserveInt64(merged, st.ChunksMerged.Load())
		o.ObserveInt64(head, int64(db.HeadSeries()))
		o.ObserveInt64(parts, int64(db.Partitions()))
		o.ObserveInt64(disk, int64(db.DiskUsage()))
		o.ObserveInt64(sizeLimit, db.RetentionSizeLimit())
		w := int64(0)
		if ok, _ := db.Writable(); ok {
			w = 1
		}
		o.ObserveInt64(writable, w)
		o.ObserveInt64(refused, db.CommitsRefused())
		o.ObserveInt64(memLimit, currentMemoryLimit())
		return nil
	}, appended, ooo, rejected, created, exemplars, dropped, checkpoints, merged, head, parts, disk, sizeLimit, writable, refused, memLimit)
	if err != nil {
		return nil, err
	}
	set.Logger.Debug("Registered storage telemetry", zap.String("scope", compmetadata.ScopeName))
	return reg, nil
}
