package storage

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
)

// Config is the configuration of the metricstor storage extension. Durations are Prometheus
// durations, so `15d` and `2w` work as well as `360h` or `1h30m`.
type Config struct {
	// Directory holds the database. Default "./data". Two processes cannot open the same one.
	Directory string `mapstructure:"directory"`
	// Retention is how long samples are kept, measured back from the newest stored sample (as
	// in Prometheus). Whole partitions past it are dropped. 0 keeps everything. Default 15d.
	Retention model.Duration `mapstructure:"retention"`
	// PartitionDuration is the time span of one partition: the unit retention drops and the
	// span of one generation of the inverted index. Default 24h.
	PartitionDuration model.Duration `mapstructure:"partition_duration"`
	// OutOfOrderWindow is how far behind the newest stored sample an out-of-order sample may be
	// and still be accepted; older ones are refused one by one. 0 refuses every sample older
	// than its series' newest. Default 10m.
	OutOfOrderWindow model.Duration `mapstructure:"out_of_order_window"`
	// CacheSizeMiB is the size of Pebble's block cache. Default 32.
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

func createDefaultConfig() *Config {
	return &Config{
		Directory:         "./data",
		Retention:         model.Duration(15 * 24 * time.Hour),
		PartitionDuration: model.Duration(24 * time.Hour),
		OutOfOrderWindow:  model.Duration(10 * time.Minute),
		CacheSizeMiB:      32,
	}
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
	if c.CacheSizeMiB < 1 {
		errs = append(errs, fmt.Errorf("cache_size_mib: must be at least 1 (got %d)", c.CacheSizeMiB))
	}
	return errors.Join(errs...)
}
