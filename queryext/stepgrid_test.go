package queryext

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestStepGridMatchesPrometheus runs the conformance query set, the benchmark's queries and
// selectors with offsets, @, subqueries and lookback deltas of their own as range queries over
// demo data scraped every second, with steps of a minute and more (the store then leaves out
// most samples of plain selectors), on Prometheus's engine as it is and on the served engine
// (telling the store its steps, whole and in 3 parts), and requires the same answers bit for bit.
// It also requires that the store did leave samples out: of a plain selector, one in ten at
// most reaches the engine, and of all queries together three quarters at most.
func TestStepGridMatchesPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped with -short: it loads 20 minutes of demo data and runs about 2,300 range queries; it runs in `make unit` and `make test`, which do not pass -short")
	}
	queries := conformanceQueries(t,
		`demo_num_cpus`, `demo_memory_usage_bytes offset 1m`, `demo_memory_usage_bytes @ 1700000500`,
		`demo_memory_usage_bytes - demo_memory_usage_bytes offset 2m`,
		`max_over_time(demo_memory_usage_bytes[3m:10s])`, `timestamp(demo_batch_last_success_timestamp_seconds)`,
		`count({job="demo"})`, `1 - demo_disk_usage_bytes / demo_disk_total_bytes`,
	)

	q, start := demoStore(t)
	var whole, thinned countingQueryable
	whole.Queryable, thinned.Queryable = q, q

	cfg := createDefaultConfig().(*Config)
	engine := newEngine(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), parser.NewParser(parser.Options{}))
	defer engine.Close()
	for round, run := range []struct {
		parts    int
		step     time.Duration
		lookback time.Duration
	}{{1, time.Minute, 0}, {3, 97 * time.Second, 0}, {1, 83 * time.Second, 2 * time.Minute}} {
		se := &splitEngine{Engine: engine, parts: run.parts, minSteps: 1, maxSamples: cfg.MaxSamples, parser: parser.NewParser(parser.Options{})}
		opts := promql.NewPrometheusQueryOpts(false, run.lookback, nil)
		from, to := start.Add(4*time.Minute+333*time.Millisecond), start.Add(21*time.Minute)
		for i, qs := range queries {
			if raceEnabled && i%3 != round {
				continue // under the race detector, each query once
			}
			w0, t0 := whole.samples.Load(), thinned.samples.Load()
			want, wantQry := rangeAnswer(t, engine, &whole, opts, qs, from, to, run.step)
			got, gotQry := rangeAnswer(t, se, &thinned, opts, qs, from, to, run.step)
			if qs == "demo_num_cpus" {
				// Sampled every second, read at steps of a minute or more: the first and
				// last samples of each chunk besides, one in 60 is read.
				if w, th := whole.samples.Load()-w0, thinned.samples.Load()-t0; 10*th >= w {
					t.Errorf("step %v: %s: %d samples reached the engine telling the store its steps, %d without", run.step, qs, th, w)
				}
			}
			if diff := diffSplitAnswers(got, want); diff != "" {
				t.Errorf("%d parts, step %v, lookback %v: %s: %s", run.parts, run.step, run.lookback, qs, diff)
			}
			for _, qry := range []promql.Query{wantQry, gotQry} {
				if qry != nil {
					qry.Close()
				}
			}
		}
	}
	// Most of the set applies functions over ranges, whose samples are all read.
	if w, th := whole.samples.Load(), thinned.samples.Load(); 4*th >= 3*w {
		t.Errorf("%d samples reached the engine telling the store its steps, %d without: want at most three quarters", th, w)
	} else {
		t.Logf("samples that reached the engine: %d, telling the store its steps %d", w, th)
	}
}

// countingQueryable counts the float samples its series' iterators return (the parts of a
// split query read at the same time).
type countingQueryable struct {
	promstorage.Queryable
	samples atomic.Int64
}

func (c *countingQueryable) Querier(mint, maxt int64) (promstorage.Querier, error) {
	q, err := c.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return countingQuerier{q, &c.samples}, nil
}

type countingQuerier struct {
	promstorage.Querier
	samples *atomic.Int64
}

func (q countingQuerier) Select(ctx context.Context, sorted bool, hints *promstorage.SelectHints, ms ...*labels.Matcher) promstorage.SeriesSet {
	return countingSet{q.Querier.Select(ctx, sorted, hints, ms...), q.samples}
}

type countingSet struct {
	promstorage.SeriesSet
	samples *atomic.Int64
}

func (s countingSet) At() promstorage.Series { return countingSeries{s.SeriesSet.At(), s.samples} }

type countingSeries struct {
	promstorage.Series
	samples *atomic.Int64
}

func (s countingSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if c, ok := it.(*countingIterator); ok {
		it = c.Iterator
	}
	return &countingIterator{s.Series.Iterator(it), s.samples}
}

type countingIterator struct {
	chunkenc.Iterator
	samples *atomic.Int64
}

func (it *countingIterator) Next() chunkenc.ValueType {
	vt := it.Iterator.Next()
	if vt == chunkenc.ValFloat {
		it.samples.Add(1)
	}
	return vt
}
