package queryext

import (
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The query endpoints' answers, gzipped by gzipAnswers, decompress to exactly what they are
// uncompressed, with Prometheus's headers; a client that prefers deflate, and the other
// endpoints, get Prometheus's own compression.
func TestGzipAnswersAsPrometheus(t *testing.T) {
	h := uiHandler(t, true)
	body := func(resp *http.Response) string {
		t.Helper()
		defer resp.Body.Close()
		var r io.Reader = resp.Body
		switch resp.Header.Get("Content-Encoding") {
		case "gzip":
			zr, err := gzip.NewReader(resp.Body)
			require.NoError(t, err)
			r = zr
		case "deflate":
			zr, err := zlib.NewReader(resp.Body)
			require.NoError(t, err)
			r = zr
		}
		b, err := io.ReadAll(r)
		require.NoError(t, err)
		return string(b)
	}
	range1h := "/api/v1/query_range?" + url.Values{"query": {"vector(1) + time()"}, "start": {"0"}, "end": {"3600"}, "step": {"15"}}.Encode()
	for _, target := range []string{
		range1h,
		"/api/v1/query?time=100&query=" + url.QueryEscape(`label_replace(vector(2), "a", "b", "", "")`),
		"/api/v1/query?query=" + url.QueryEscape("sum(("), // a 400 with Prometheus's error JSON
		"/api/v1/labels",
	} {
		plain := uiRequest(t, h, http.MethodGet, target, nil)
		want := body(plain)
		require.NotEmpty(t, want)
		for _, tc := range []struct{ accept, encoding string }{
			{"gzip", "gzip"},
			{"br, gzip;q=0.5, gzip", "gzip"}, // as Prometheus reads it: the first coding it knows, literally
			{"deflate, gzip", "deflate"},
			{"identity", ""},
		} {
			resp := uiRequest(t, h, http.MethodGet, target, map[string]string{"Accept-Encoding": tc.accept})
			assert.Equal(t, plain.StatusCode, resp.StatusCode, "%s %s", target, tc.accept)
			assert.Equal(t, tc.encoding, resp.Header.Get("Content-Encoding"), "%s %s", target, tc.accept)
			assert.Equal(t, "Accept-Encoding", resp.Header.Get("Vary"), "%s %s", target, tc.accept)
			if tc.encoding != "" {
				assert.Empty(t, resp.Header.Get("Content-Length"), "%s %s", target, tc.accept)
			}
			assert.Equal(t, want, body(resp), "%s %s", target, tc.accept)
		}
	}

	// Which writer gzipped: the header's XFL byte is 4 at the fastest level, 0 at the default.
	xfl := func(target string) byte {
		resp := uiRequest(t, h, http.MethodGet, target, map[string]string{"Accept-Encoding": "gzip"})
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Greater(t, len(raw), 10)
		return raw[8]
	}
	assert.Equal(t, byte(4), xfl(range1h), "query_range: gzipAnswers")
	assert.Equal(t, byte(0), xfl("/api/v1/labels"), "labels: Prometheus's handler")
}
