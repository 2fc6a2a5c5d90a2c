package tsdb

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestPromQLScripts runs Prometheus's own PromQL test scripts against this store: each script
// loads series through the appender and checks query results through the querier.
func TestPromQLScripts(t *testing.T) {
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	promqltest.RunBuiltinTestsWithStorage(t, engine, func(tb testing.TB) storage.Storage {
		// Two-hour partitions so that the scripts' data spans several of them.
		db, err := Open(tb.TempDir(), Options{PartitionDuration: 2 * time.Hour, OutOfOrderWindow: 0})
		require.NoError(tb, err)
		tb.Cleanup(func() { _ = db.Close() })
		return db
	})
}

var _ storage.Storage = (*DB)(nil)
var _ = promql.NewEngine
