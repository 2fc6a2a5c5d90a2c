package storage

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/confmap"
)

// Config is the configuration of the metricstor storage extension. Durations are Prometheus
// durations, so `15d` and `2w` work as well as `360h` or `1h30m`.
type Config struct {
	// Directory holds the database. Default "./data". Two processes cannot open the same one.
	Directory string `mapstructure:"directory"`
	// Retention is how long samples are kept, measured back from the newest stored sample (as
	// in Prometheus). Whole partitions past it are dropped. 0 keeps everything. Default 15d.
	Retention model.Duration `mapstructure:"retention"`
	// RetentionSize bounds the disk the database uses (Pebble's files and the sample log): the
	// oldest partitions are dropped until it fits, never the newest one. A size with a base-2
	// unit as Prometheus's --storage.tsdb.retention.size ("512MB", "10GB": 1GB is 2^30 bytes),
	// or a percentage of the total size of the filesystem holding `directory` ("80%", as
	// Prometheus's retention percentage). "0" or empty: no size limit (default, as Prometheus).
	RetentionSize string `mapstructure:"retention_size"`
	// Limits bound what a series may look like and how many are active. 0 disables a limit.
	Limits LimitsConfig `mapstructure:"limits"`
	// PartitionDuration is the time span of one partition: the unit retention drops and the
	// span of one generation of the inverted index. Default 24h.
	PartitionDuration model.Duration `mapstructure:"partition_duration"`
	// OutOfOrderWindow is how far behind the newest stored sample an out-of-order sample may be
	// and still be accepted; older ones are refused one by one. 0 refuses every sample older
	// than its series' newest. Default 10m.
	OutOfOrderWindow model.Duration `mapstructure:"out_of_order_window"`
	// MemoryLimitMiB is the memory budget of the process, in MiB. The store sizes Pebble's
	// memtables and block cache from it (memory.go), and the Go runtime's soft memory limit is
	// set to it unless the GOMEMLIMIT environment variable is set (the user's setting wins).
	// Start lowers it to 90 % of the cgroup's memory limit when it is above that. 0 sets no
	// runtime limit and fixed store sizes (8 MiB memtables, 32 MiB cache). Default 140 (see the
	// README: 100,000 active series fit in it).
	MemoryLimitMiB int `mapstructure:"memory_limit_mib"`
	// CacheSizeMiB is the size of Pebble's block cache. 0 (default): an eighth of
	// memory_limit_mib, or 32 without a memory limit.
	CacheSizeMiB int `mapstructure:"cache_size_mib"`
	// SyncCommits fsyncs the sample log on every commit (power-loss durability). Without it an
	// acknowledged commit survives a crash of the process, and the log is fsynced at checkpoints.
	SyncCommits bool `mapstructure:"sync_commits"`
	// MinFreeSpaceMiB is the free space of the data directory's filesystem below which writes
	// are refused (retryably) so that the database never runs out of space in the middle of a
	// write. 0 means the smaller of 64 MiB and a quarter of the filesystem; -1 turns it off.
	MinFreeSpaceMiB int `mapstructure:"min_free_space_mib"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// LimitsConfig bounds the series the store accepts. They are checked when a series enters
// memory (a new series, or one idle for over an hour that comes back); a sample of a series
// past a limit is refused with an error wrapping ErrLimitExceeded that names the limit, and
// the rest of its batch is stored. Series already active are never refused, so existing data
// is never altered nor cut off. The defaults are far above what real workloads send and stop
// runaway label sets and cardinality explosions before they exhaust memory or disk.
type LimitsConfig struct {
	// LabelsPerSeries is the most labels one series may have, __name__ included. Default 64
	// (Mimir: 30, VictoriaMetrics: 40; OTLP's target_info carries every resource attribute).
	LabelsPerSeries int `mapstructure:"labels_per_series"`
	// LabelNameLength is the longest label name in bytes. Default 1024 (as Mimir).
	LabelNameLength int `mapstructure:"label_name_length"`
	// LabelValueLength is the longest label value in bytes, metric names included. Default
	// 16384 (Mimir: 2048, VictoriaMetrics: 4096; a JVM's process.command_line can pass those).
	LabelValueLength int `mapstructure:"label_value_length"`
	// ActiveSeries is the most series the store holds in memory: those appended to within the
	// last hour plus out_of_order_window. New series are refused past it. Default 1000000.
	ActiveSeries int `mapstructure:"active_series"`

	// prevent unkeyed literal initialization
	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{
		Directory:         "./data",
		Retention:         model.Duration(15 * 24 * time.Hour),
		RetentionSize:     "0",
		PartitionDuration: model.Duration(24 * time.Hour),
		OutOfOrderWindow:  model.Duration(10 * time.Minute),
		MemoryLimitMiB:    defaultMemoryLimitMiB,
		Limits: LimitsConfig{
			LabelsPerSeries:  64,
			LabelNameLength:  1024,
			LabelValueLength: 16384,
			ActiveSeries:     1_000_000,
		},
	}
}

var _ confmap.Unmarshaler = (*Config)(nil)

// Unmarshal accepts a bare number for retention_size (YAML reads `retention_size: 0` as an
// integer) and leaves the rest to confmap.
func (c *Config) Unmarshal(conf *confmap.Conf) error {
	switch v := conf.Get("retention_size").(type) {
	case int, int64, uint64, float64:
		if err := conf.Merge(confmap.NewFromStringMap(map[string]any{"retention_size": fmt.Sprint(v)})); err != nil {
			return err
		}
	}
	return conf.Unmarshal(c)
}

// parseRetentionSize reads retention_size: a size in bytes, or a fraction of the filesystem
// (from a percentage). At most one of the two is not zero.
func parseRetentionSize(s string) (bytes int64, fraction float64, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, 0, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || !(f > 0 && f <= 100) {
			return 0, 0, fmt.Errorf("retention_size: a percentage must be above 0%% and at most 100%% (got %q)", s)
		}
		return 0, f / 100, nil
	}
	n, err := units.ParseBase2Bytes(s)
	if err != nil || n < 0 {
		return 0, 0, fmt.Errorf("retention_size: must be 0, a size such as 512MB or 10GB, or a percentage of the filesystem such as 80%% (got %q)", s)
	}
	return int64(n), 0, nil
}

// Validate checks the configuration without touching the filesystem.
func (c *Config) Validate() error {
	var errs []error
	if c.Directory == "" {
		errs = append(errs, errors.New("directory: must not be empty"))
	}
	if time.Duration(c.PartitionDuration) < time.Minute {
		errs = append(errs, fmt.Errorf("partition_duration: must be at least 1m (got %v)", c.PartitionDuration))
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention: must not be negative (got %v)", c.Retention))
	} else if c.Retention > 0 && c.Retention < c.PartitionDuration {
		errs = append(errs, fmt.Errorf("retention: must be 0 (keep everything) or at least partition_duration %v (got %v)",
			c.PartitionDuration, c.Retention))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("out_of_order_window: must not be negative (got %v)", c.OutOfOrderWindow))
	}
	if c.MinFreeSpaceMiB < -1 {
		errs = append(errs, fmt.Errorf("min_free_space_mib: must be -1 (off), 0 (default) or a size in MiB (got %d)", c.MinFreeSpaceMiB))
	}
	if c.MemoryLimitMiB != 0 && c.MemoryLimitMiB < minMemoryLimitMiB {
		errs = append(errs, fmt.Errorf("memory_limit_mib: must be 0 (no limit) or at least %d (got %d)", minMemoryLimitMiB, c.MemoryLimitMiB))
	}
	switch {
	case c.CacheSizeMiB < 0:
		errs = append(errs, fmt.Errorf("cache_size_mib: must be 0 (an eighth of memory_limit_mib) or a size in MiB (got %d)", c.CacheSizeMiB))
	case c.MemoryLimitMiB > 0 && c.CacheSizeMiB > c.MemoryLimitMiB/2:
		errs = append(errs, fmt.Errorf("cache_size_mib: must be at most half of memory_limit_mib %d (got %d)", c.MemoryLimitMiB, c.CacheSizeMiB))
	}
	if _, _, err := parseRetentionSize(c.RetentionSize); err != nil {
		errs = append(errs, err)
	}
	for _, l := range []struct {
		key string
		v   int
	}{
		{"labels_per_series", c.Limits.LabelsPerSeries},
		{"label_name_length", c.Limits.LabelNameLength},
		{"label_value_length", c.Limits.LabelValueLength},
		{"active_series", c.Limits.ActiveSeries},
	} {
		if l.v < 0 {
			errs = append(errs, fmt.Errorf("limits::%s: must be 0 (no limit) or positive (got %d)", l.key, l.v))
		}
	}
	return errors.Join(errs...)
}
