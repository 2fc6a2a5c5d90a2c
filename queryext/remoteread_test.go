package queryext

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readRequest is a remote read request of one query over [mint, maxt] for the given response
// types, as Prometheus's remote read client builds it.
func readRequest(t *testing.T, mint, maxt int64, types []prompb.ReadRequest_ResponseType, ms ...*labels.Matcher) []byte {
	q, err := remote.ToQuery(mint, maxt, ms, &promstorage.SelectHints{Start: mint, End: maxt})
	require.NoError(t, err)
	b, err := (&prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: types}).Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, b)
}

// postRead sends a remote read request as Prometheus does (snappy body, Content-Encoding:
// snappy, the protobuf content type).
func postRead(t *testing.T, base string, body []byte) *http.Response {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/read", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	// A remote read that waits for ever (a concurrency gate of size zero) fails here, not by
	// hanging the test.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	return resp
}

// dumpSeries renders every series of a set with its samples (float bits, so that stale markers
// and NaN compare exactly; histograms in Prometheus's string form).
func dumpSeries(t *testing.T, ss promstorage.SeriesSet) []string {
	var out []string
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		var sb strings.Builder
		sb.WriteString(s.Labels().String())
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&sb, " %d:%x", ts, math.Float64bits(v))
			case chunkenc.ValHistogram:
				ts, h := it.AtHistogram(nil)
				fmt.Fprintf(&sb, " %d:h%s", ts, h.String())
			case chunkenc.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				fmt.Fprintf(&sb, " %d:fh%s", ts, h.String())
			}
		}
		require.NoError(t, it.Err())
		out = append(out, sb.String())
	}
	require.NoError(t, ss.Err())
	return out
}

// TestRemoteReadResponseTypes reads the test data through /api/v1/read of the running extension,
// as SAMPLES and as STREAMED_XOR_CHUNKS (in frames of a few bytes, so that every series is a
// frame of its own), and gets exactly what the store holds: floats, the native histogram, labels.
func TestRemoteReadResponseTypes(t *testing.T) {
	store := newTestStore(t, nil)
	loadTestData(t, store)
	base := startTestExtensionOn(t, store, func(c *Config) { c.RemoteRead.MaxBytesInFrame = 16 })

	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	mint, maxt := t0-60_000, t0+120_000
	q, err := store.Querier(mint, maxt)
	require.NoError(t, err)
	want := dumpSeries(t, q.Select(context.Background(), true, nil, all))
	require.NoError(t, q.Close())
	require.Len(t, want, 3)

	t.Run("samples", func(t *testing.T) {
		resp := postRead(t, base, readRequest(t, mint, maxt, []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES}, all))
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		assert.Equal(t, "application/x-protobuf", resp.Header.Get("Content-Type"))
		raw, err := snappy.Decode(nil, body)
		require.NoError(t, err)
		var rr prompb.ReadResponse
		require.NoError(t, rr.Unmarshal(raw))
		require.Len(t, rr.Results, 1)
		assert.Equal(t, want, dumpSeries(t, remote.FromQueryResult(true, rr.Results[0])))
	})
	t.Run("streamed", func(t *testing.T) {
		resp := postRead(t, base, readRequest(t, mint, maxt,
			[]prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS, prompb.ReadRequest_SAMPLES}, all))
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse", resp.Header.Get("Content-Type"))
		// Frames of at most 16 bytes of chunks: one frame per series.
		cr := remote.NewChunkedReader(resp.Body, 1<<20, nil)
		frames := 0
		var got []string
		for {
			var f prompb.ChunkedReadResponse
			err := cr.NextProto(&f)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			frames++
			got = append(got, dumpSeries(t, remote.FromQueryResult(true, chunkedToSamples(t, f.ChunkedSeries)))...)
		}
		assert.Equal(t, 3, frames)
		assert.Equal(t, want, got)
	})
}

// chunkedToSamples decodes chunked series into a SAMPLES result, to compare them alike.
func chunkedToSamples(t *testing.T, css []*prompb.ChunkedSeries) *prompb.QueryResult {
	res := &prompb.QueryResult{}
	for _, cs := range css {
		ts := &prompb.TimeSeries{Labels: cs.Labels}
		for _, c := range cs.Chunks {
			chk, err := chunkenc.FromData(chunkenc.Encoding(c.Type), c.Data)
			require.NoError(t, err)
			it := chk.Iterator(nil)
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				switch vt {
				case chunkenc.ValFloat:
					tm, v := it.At()
					ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: tm, Value: v})
				case chunkenc.ValHistogram:
					tm, h := it.AtHistogram(nil)
					ts.Histograms = append(ts.Histograms, prompb.FromIntHistogram(tm, h))
				case chunkenc.ValFloatHistogram:
					tm, h := it.AtFloatHistogram(nil)
					ts.Histograms = append(ts.Histograms, prompb.FromFloatHistogram(tm, h))
				}
			}
			require.NoError(t, it.Err())
		}
		res.Timeseries = append(res.Timeseries, ts)
	}
	return res
}

// TestRemoteReadLimits: a SAMPLES answer over remote_read::sample_limit is refused with 400
// naming the limit; with concurrent_limit 1, requests are served one after the other (none
// waits for ever, as every one did with Prometheus's handler given a limit of 0).
func TestRemoteReadLimits(t *testing.T) {
	store := newTestStore(t, nil)
	loadTestData(t, store)
	base := startTestExtensionOn(t, store, func(c *Config) {
		c.RemoteRead.SampleLimit = 3
		c.RemoteRead.ConcurrentLimit = 1
	})
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	samples := []prompb.ReadRequest_ResponseType{prompb.ReadRequest_SAMPLES}

	resp := postRead(t, base, readRequest(t, t0, t0+60_000, samples, all))
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "exceeded sample limit (3)")

	one := labels.MustNewMatcher(labels.MatchEqual, "instance", "b") // 2 samples
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() {
			resp := postRead(t, base, readRequest(t, t0, t0+60_000, samples, one))
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, c := range codes {
		assert.Equal(t, http.StatusOK, c, "request %d", i)
	}

	// Not a snappy protobuf request: 400 from the handler, not a hang or a 500.
	resp = postRead(t, base, []byte("not snappy"))
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, string(body))
}
