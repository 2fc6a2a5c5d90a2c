package tsdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// seriesWith returns a series named name with n labels in all, __name__ included.
func seriesWith(name string, n int) labels.Labels {
	b := labels.NewScratchBuilder(n)
	b.Add(labels.MetricName, name)
	for i := 1; i < n; i++ {
		b.Add(fmt.Sprintf("l%02d", i), "v")
	}
	b.Sort()
	return b.Labels()
}

// Each label limit accepts a series at the limit and refuses one past it, with an error that
// names the limit, its value and the series; the rest of the batch is stored.
func TestLabelLimits(t *testing.T) {
	lim := Limits{LabelsPerSeries: 5, LabelNameLength: 10, LabelValueLength: 20}
	db, _ := openMem(t, Options{PartitionDuration: time.Hour, Limits: lim})
	tests := []struct {
		name    string
		at      labels.Labels // exactly at the limit: accepted
		past    labels.Labels // one past it: refused
		errMsg  string
		counter func() int64
	}{
		{
			name: "labels_per_series",
			at:   seriesWith("at5", 5), past: seriesWith("past6", 6),
			errMsg:  `limit exceeded: series has 6 labels, more than limits.labels_per_series 5: {__name__="past6", l01="v", l02="v", l03="v", l04="v", l05="v"}`,
			counter: db.Stats().RejectedLimit.LabelsPerSeries.Load,
		},
		{
			name: "label_name_length",
			at:   lbls("__name__", "n", strings.Repeat("a", 10), "v"), past: lbls("__name__", "n", strings.Repeat("b", 11), "v"),
			errMsg:  `limit exceeded: label name "bbbbbbbbbbb" is 11 bytes long, more than limits.label_name_length 10: {__name__="n", bbbbbbbbbbb="v"}`,
			counter: db.Stats().RejectedLimit.LabelNameLength.Load,
		},
		{
			name: "label_value_length",
			at:   lbls("__name__", "v", "job", strings.Repeat("x", 20)), past: lbls("__name__", "v", "job", strings.Repeat("y", 21)),
			errMsg:  `limit exceeded: value of label "job" is 21 bytes long, more than limits.label_value_length 20: {__name__="v", job="yyyyyyyyyyyyyyyyyyyyy"}`,
			counter: db.Stats().RejectedLimit.LabelValueLength.Load,
		},
		{
			name: "metric name is a label value",
			at:   lbls("__name__", strings.Repeat("m", 20)), past: lbls("__name__", strings.Repeat("m", 21)),
			errMsg:  `limit exceeded: value of label "__name__" is 21 bytes long, more than limits.label_value_length 20: {__name__="mmmmmmmmmmmmmmmmmmmmm"}`,
			counter: db.Stats().RejectedLimit.LabelValueLength.Load,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.counter()
			ok := lbls("__name__", "ok", "case", fmt.Sprint(i))
			app := db.AppenderV2(context.Background())
			_, err := app.Append(0, tt.at, 0, 1000, 1, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err, "at the limit")
			_, err = app.Append(0, tt.past, 0, 1000, 2, nil, nil, storage.AppendV2Options{})
			require.ErrorIs(t, err, ErrLimitExceeded)
			require.EqualError(t, err, tt.errMsg)
			_, err = app.Append(0, ok, 0, 1000, 3, nil, nil, storage.AppendV2Options{})
			require.NoError(t, err)
			require.NoError(t, app.Commit())
			require.Equal(t, before+1, tt.counter())

			requireSamples(t, []smp{{T: 1000, F: 1}}, seriesSamples(t, db, tt.at))
			requireSamples(t, []smp{{T: 1000, F: 3}}, seriesSamples(t, db, ok), "the rest of the batch is stored")
			require.NotContains(t, selectAll(t, db, 0, 2000, nil, allSeries), tt.past.String())
		})
	}
}

// A refused series that is huge is described in a bounded message.
func TestLimitMessageIsBounded(t *testing.T) {
	db, _ := openMem(t, Options{Limits: Limits{LabelsPerSeries: 10, LabelValueLength: 100}})
	err := appendAll(t, db, seriesWith("many", 500), smp{T: 1, F: 1})[0]
	require.ErrorIs(t, err, ErrLimitExceeded)
	require.Contains(t, err.Error(), "series has 500 labels, more than limits.labels_per_series 10: {__name__=\"many\", l01=\"v\"")
	require.Contains(t, err.Error(), "more labels}")
	require.Less(t, len(err.Error()), 1000)

	err = appendAll(t, db, lbls("__name__", "long", "path", strings.Repeat("/x", 5000)), smp{T: 1, F: 1})[0]
	require.ErrorIs(t, err, ErrLimitExceeded)
	require.Contains(t, err.Error(), `value of label "path" is 10000 bytes long, more than limits.label_value_length 100: {__name__="long", path="/x/x`)
	require.Contains(t, err.Error(), `/x"...(10000 bytes)}`)
	require.Less(t, len(err.Error()), 400)
}

// Zero limits are off: a series with many long labels is stored.
func TestLimitsOff(t *testing.T) {
	db, _ := openMem(t, Options{})
	ls := seriesWith("big", 200)
	ls = labels.NewBuilder(ls).Set(strings.Repeat("n", 5000), strings.Repeat("v", 100_000)).Labels()
	mustAppend(t, db, ls, smp{T: 1, F: 1})
	requireSamples(t, []smp{{T: 1, F: 1}}, seriesSamples(t, db, ls))
	require.Zero(t, db.Stats().RejectedLimit.LabelsPerSeries.Load()+db.Stats().RejectedLimit.LabelNameLength.Load()+
		db.Stats().RejectedLimit.LabelValueLength.Load())
}

// At limits.active_series new series are refused with an error naming the limit, series in
// memory go on being appended, and once head garbage collection frees room new series are
// accepted again.
func TestActiveSeriesLimit(t *testing.T) {
	db, fs := openMem(t, Options{PartitionDuration: time.Hour, Limits: Limits{ActiveSeries: 3}})
	s := func(i int) labels.Labels { return lbls("__name__", "s", "i", fmt.Sprint(i)) }
	mustAppend(t, db, s(0), smp{T: 0, F: 0})
	app := db.AppenderV2(context.Background())
	for i := 1; i <= 2; i++ {
		_, err := app.Append(0, s(i), 0, 0, 0, nil, nil, storage.AppendV2Options{})
		require.NoError(t, err, "series %d of 3", i)
	}
	require.NoError(t, app.Commit())
	require.Equal(t, 3, db.HeadSeries())

	// One past the limit: refused, and the existing series of the same batch are stored.
	app = db.AppenderV2(context.Background())
	_, err := app.Append(0, s(3), 0, 1000, 3, nil, nil, storage.AppendV2Options{})
	require.ErrorIs(t, err, ErrLimitExceeded)
	require.EqualError(t, err, `limit exceeded: the store holds 3 active series, limits.active_series is 3; only series already active are appended: {__name__="s", i="3"}`)
	for i := range 3 {
		_, err := app.Append(0, s(i), 0, 1000, float64(i), nil, nil, storage.AppendV2Options{})
		require.NoError(t, err, "existing series %d", i)
	}
	require.NoError(t, app.Commit())
	require.EqualValues(t, 1, db.Stats().RejectedLimit.ActiveSeries.Load())
	require.EqualValues(t, 3, db.Stats().SeriesCreated.Load(), "a refused series is not created")
	require.Equal(t, 3, db.HeadSeries())
	for i := range 3 {
		requireSamples(t, []smp{{T: 0, F: 0}, {T: 1000, F: float64(i)}}, seriesSamples(t, db, s(i)))
	}
	require.Empty(t, selectAll(t, db, 0, 2000, nil, eq("i", "3")))

	// s(0) goes idle; once collected, it no longer counts and a new series fits. s(0) coming
	// back counts as a series entering memory and is refused while the head is full.
	mustAppend(t, db, s(1), smp{T: 2 * hourMs, F: 1})
	mustAppend(t, db, s(2), smp{T: 2 * hourMs, F: 2})
	db.collectHead()
	require.Equal(t, 2, db.HeadSeries())
	mustAppend(t, db, s(3), smp{T: 2 * hourMs, F: 3})
	require.ErrorIs(t, appendAll(t, db, s(0), smp{T: 2 * hourMs, F: 0})[0], ErrLimitExceeded)
	requireSamples(t, []smp{{T: 0, F: 0}, {T: 1000, F: 0}}, seriesSamples(t, db, s(0)), "its stored data stays queryable")

	// A reopened DB has nothing in memory: the series come back as they are appended to.
	db = reopen(t, db, fs)
	require.Equal(t, 0, db.HeadSeries())
	for _, i := range []int{1, 2, 0} {
		mustAppend(t, db, s(i), smp{T: 3 * hourMs, F: 9})
	}
	require.ErrorIs(t, appendAll(t, db, s(3), smp{T: 3 * hourMs, F: 9})[0], ErrLimitExceeded)
}

// Concurrent appenders creating series never get past the limit together.
func TestActiveSeriesLimitConcurrent(t *testing.T) {
	const limit, writers, perWriter = 50, 8, 20
	db, _ := openMem(t, Options{Limits: Limits{ActiveSeries: limit}})
	var (
		wg             sync.WaitGroup
		mu             sync.Mutex
		accepted, refd int
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				app := db.AppenderV2(context.Background())
				_, err := app.Append(0, lbls("__name__", "c", "w", fmt.Sprint(w), "i", fmt.Sprint(i)), 0, 1, 1, nil, nil, storage.AppendV2Options{})
				mu.Lock()
				if err == nil {
					accepted++
				} else {
					require.ErrorIs(t, err, ErrLimitExceeded)
					refd++
				}
				mu.Unlock()
				require.NoError(t, app.Commit())
			}
		})
	}
	wg.Wait()
	require.Equal(t, limit, accepted)
	require.Equal(t, writers*perWriter-limit, refd)
	require.Equal(t, limit, db.HeadSeries())
	require.Len(t, selectAll(t, db, 0, 10, nil, allSeries), limit)
}

// Replaying the sample log after a crash is not limited: the series it names were accepted
// before, even if the limits were lowered since.
func TestReplayIgnoresLimits(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openOn(t, fs, Options{PartitionDuration: time.Hour})
	want := map[string][]smp{}
	for i := range 5 {
		ls := seriesWith(fmt.Sprint("r", i), 6)
		mustAppend(t, db, ls, smp{T: 1000, F: float64(i)})
		want[ls.String()] = []smp{{T: 1000, F: float64(i)}}
	}
	clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(1, 2))})
	cdb := openOn(t, clone, Options{PartitionDuration: time.Hour, Limits: Limits{LabelsPerSeries: 3, ActiveSeries: 2}})
	requireSameSeries(t, want, selectAll(t, cdb, 0, 2000, nil, allSeries))
}

// BenchmarkCheckSeriesLimits is what the label limits add to the creation of a series with
// 10 labels (the path of a series new to memory only; series in memory are not checked).
func BenchmarkCheckSeriesLimits(b *testing.B) {
	db := &DB{opts: Options{Limits: Limits{LabelsPerSeries: 64, LabelNameLength: 1024, LabelValueLength: 16384}}}
	ls := seriesWith("http_requests_total", 10)
	b.ReportAllocs()
	for b.Loop() {
		if err := db.checkSeriesLimits(ls); err != nil {
			b.Fatal(err)
		}
	}
}
