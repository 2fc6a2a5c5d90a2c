package receiver

import (
	"math"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// TestSeriesBatchMatchesV2: series added one sample at a time to a SeriesBatch become exactly the
// pipeline data of the same series sent in one remote write 2.0 request (the contract the scrape
// receiver relies on), and an invalid series is refused with the 2.0 path's message.
func TestSeriesBatchMatchesV2(t *testing.T) {
	const ts = 1_700_000_000_000
	type one struct {
		ls   labels.Labels
		typ  writev2.Metadata_MetricType
		meta metadata.Metadata
		v    float64
		hist bool
		ex   []exemplar.Exemplar
	}
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: "requests"}
	hist := metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}
	in := []one{
		{ls: labels.FromStrings("__name__", "req_total", "job", "a", "instance", "h:1", "code", "200"), typ: writev2.Metadata_METRIC_TYPE_COUNTER, meta: counter, v: 5,
			ex: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "0102030405060708090a0b0c0d0e0f10"), Value: 1, Ts: ts, HasTs: true}}},
		{ls: labels.FromStrings("__name__", "req_total", "job", "a", "instance", "h:1", "code", "500"), typ: writev2.Metadata_METRIC_TYPE_COUNTER, meta: counter, v: 1},
		{ls: labels.FromStrings("__name__", "lat_seconds_bucket", "job", "a", "instance", "h:1", "le", "1.0"), typ: writev2.Metadata_METRIC_TYPE_HISTOGRAM, meta: hist, v: 3},
		{ls: labels.FromStrings("__name__", "native_seconds", "job", "a", "instance", "h:2"), typ: writev2.Metadata_METRIC_TYPE_HISTOGRAM, meta: hist, hist: true},
		{ls: labels.FromStrings("__name__", "gone", "job", "b"), v: math.Float64frombits(value.StaleNaN)},
	}

	b := newV2Builder()
	batch := NewSeriesBatch()
	for _, s := range in {
		var m writev2.Metadata
		if s.typ != writev2.Metadata_METRIC_TYPE_UNSPECIFIED {
			m = b.meta(s.typ, s.meta.Help, s.meta.Unit)
		}
		var samples []writev2.Sample
		var hs []writev2.Histogram
		var exs []writev2.Exemplar
		for _, e := range s.ex {
			exs = append(exs, b.exemplar(e.Labels, e.Value, e.Ts))
		}
		var err error
		if s.hist {
			hs = []writev2.Histogram{writev2.FromIntHistogram(0, ts, intHistogram(ts))}
			err = batch.Add(s.ls, "", s.meta, 0, ts, 0, intHistogram(ts), nil, s.ex)
		} else {
			samples = []writev2.Sample{{Value: s.v, Timestamp: ts}}
			err = batch.Add(s.ls, "", s.meta, 0, ts, s.v, nil, nil, s.ex)
		}
		require.NoError(t, err)
		b.series(s.ls, m, samples, hs, exs...)
	}
	assert.Equal(t, len(in), batch.Points())

	c := newConverter(newMetadataCache(10))
	c.fromV2(b.build())
	require.Empty(t, c.errs)
	want := c.md
	c.release()
	got := batch.Finish()

	var jm pmetric.JSONMarshaler
	wantJSON, err := jm.MarshalMetrics(want)
	require.NoError(t, err)
	gotJSON, err := jm.MarshalMetrics(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(wantJSON), string(gotJSON))
	assert.Equal(t, 5, got.DataPointCount())

	bad := NewSeriesBatch()
	defer bad.Discard()
	err = bad.Add(labels.FromStrings("job", "a"), "", metadata.Metadata{}, 0, ts, 1, nil, nil, nil)
	require.EqualError(t, err, `series {job="a"}: missing metric name (label __name__)`)
	assert.Equal(t, 0, bad.Points())
}

// TestASCIILabelsSkipOnlyValidUTF8: 2.0 requests and SeriesBatch skip the UTF-8 checks only when
// every label byte is ASCII (the symbol table's, the series'); valid non-ASCII names and values
// are kept, invalid ones refused, long ASCII values (past the eight-byte steps) accepted.
func TestASCIILabelsSkipOnlyValidUTF8(t *testing.T) {
	const ts = 1_700_000_000_000
	long := strings.Repeat("abcdefg", 20)
	sets := []struct {
		ls labels.Labels
		ok bool
	}{
		{labels.FromStrings("__name__", "ascii", "a", long), true},
		{labels.FromStrings("__name__", "utf8", "a", "é"), true},
		{labels.FromStrings("__name__", "bad", "a", long+"\xff"), false},
		{labels.FromStrings("__name__", "badname", "\xc3", "v"), false},
	}

	t.Run("v2", func(t *testing.T) {
		for _, asciiOnly := range []bool{true, false} {
			b := newV2Builder()
			want := 0
			for _, s := range sets {
				if asciiOnly && s.ls.Get("__name__") != "ascii" {
					continue
				}
				b.series(s.ls, writev2.Metadata{}, []writev2.Sample{{Value: 1, Timestamp: ts}}, nil)
				if s.ok {
					want++
				}
			}
			c := newConverter(newMetadataCache(10))
			c.fromV2(b.build())
			assert.Equal(t, want, c.samples)
			if asciiOnly {
				assert.Empty(t, c.errs)
			} else {
				require.Len(t, c.errs, 2)
				assert.Contains(t, c.errs[0], "not UTF-8")
				assert.Contains(t, c.errs[1], "not UTF-8")
			}
			c.release()
		}
	})

	t.Run("batch", func(t *testing.T) {
		batch := NewSeriesBatch()
		defer batch.Discard()
		for _, s := range sets {
			err := batch.Add(s.ls, "", metadata.Metadata{}, 0, ts, 1, nil, nil, nil)
			if s.ok {
				assert.NoError(t, err, s.ls.String())
			} else {
				assert.ErrorContains(t, err, "not UTF-8", s.ls.String())
			}
		}
		assert.Equal(t, 2, batch.Points())
	})
}

func TestHighBits(t *testing.T) {
	for _, s := range []string{"", "a", "abcdefgh", "abcdefghi", "\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", "é", "abcdefg\x80", "abcdefgh\x80", "\xffabcdefgh"} {
		ascii := true
		for i := range len(s) {
			ascii = ascii && s[i] < 0x80
		}
		assert.Equal(t, ascii, highBitsString(s) == 0, "%q", s)
		assert.Equal(t, ascii, highBits([]byte(s)) == 0, "%q", s)
	}
}
