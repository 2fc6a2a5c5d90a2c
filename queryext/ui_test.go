package queryext

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// uiRequest sends one request through the extension's whole handler (page, gate and API).
func uiRequest(t *testing.T, h http.Handler, method, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func uiHandler(t *testing.T, ready bool) http.Handler {
	t.Helper()
	var r atomic.Bool
	r.Store(ready)
	cfg := createDefaultConfig().(*Config)
	api := newAPIHandler(newTestStore(t, testMeta), apiSettings{cfg: cfg, logger: slog.New(slog.DiscardHandler), version: "test", ready: &r})
	t.Cleanup(func() { _ = api.engine.Close() })
	return api.handler
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestUIRoutes(t *testing.T) {
	h := uiHandler(t, true)

	// / redirects to the query page, as Prometheus's does.
	resp := uiRequest(t, h, http.MethodGet, "/", nil)
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/graph", resp.Header.Get("Location"))

	// Every page path serves the same page, uncached, with the classic UI's query string.
	var page string
	for _, p := range []string{"/graph?g0.expr=up&g0.tab=0&g0.range_input=1h", "/query", "/metadata", "/status", "/tsdb-status"} {
		resp := uiRequest(t, h, http.MethodGet, p, nil)
		body := readAll(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
		assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"), p)
		assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"), p)
		assert.Empty(t, resp.Header.Get("Content-Encoding"), "%s: not gzipped without Accept-Encoding", p)
		assert.Contains(t, body, "<title>Metricstor</title>", p)
		page = body
	}

	// The page names its assets by content hash; those URLs may be cached for good.
	refs := regexp.MustCompile(`"(assets/app\.(?:js|css)\?v=[0-9a-f]{12})"`).FindAllStringSubmatch(page, -1)
	require.Len(t, refs, 2, "the page links app.js and app.css with a version: %s", page)
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for _, ref := range refs {
		resp := uiRequest(t, h, http.MethodGet, "/"+ref[1], nil)
		body := readAll(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode, ref[1])
		ext := ref[1][strings.LastIndex(ref[1][:strings.Index(ref[1], "?")], "."):strings.Index(ref[1], "?")]
		assert.Equal(t, types[ext], resp.Header.Get("Content-Type"), ref[1])
		assert.Equal(t, "public, max-age=31536000, immutable", resp.Header.Get("Cache-Control"), ref[1])
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		assert.NotEmpty(t, body, ref[1])
	}

	// Without the version an asset is served but must be revalidated.
	resp = uiRequest(t, h, http.MethodGet, "/assets/app.js", nil)
	js := readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	assert.Contains(t, js, "codemirror", "the bundle holds the PromQL editor")

	// Unknown assets and pages are 404s, not the page.
	for _, p := range []string{"/assets/nope.js", "/assets/", "/graph/x", "/nope"} {
		resp := uiRequest(t, h, http.MethodGet, p, nil)
		readAll(t, resp)
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, p)
	}

	// The API behind the page is unchanged.
	resp = uiRequest(t, h, http.MethodGet, "/api/v1/labels", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, readAll(t, resp), `"status":"success"`)
}

func TestUIGzipAndETag(t *testing.T) {
	h := uiHandler(t, true)
	plain := readAll(t, uiRequest(t, h, http.MethodGet, "/assets/app.js", nil))

	resp := uiRequest(t, h, http.MethodGet, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	zipped := readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	assert.Equal(t, "Accept-Encoding", resp.Header.Get("Vary"))
	assert.Less(t, len(zipped), len(plain)/2, "gzip shrinks the bundle")
	zr, err := gzip.NewReader(bytes.NewReader([]byte(zipped)))
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	assert.Equal(t, plain, string(unzipped))
	gzETag := resp.Header.Get("ETag")

	// gzip;q=0 refuses gzip.
	resp = uiRequest(t, h, http.MethodGet, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"})
	readAll(t, resp)
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	plainETag := resp.Header.Get("ETag")
	assert.NotEqual(t, plainETag, gzETag, "each encoding has its own ETag")

	// A client that has the asset gets 304 without a body.
	resp = uiRequest(t, h, http.MethodGet, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gzETag})
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Empty(t, readAll(t, resp))
	resp = uiRequest(t, h, http.MethodGet, "/assets/app.js", map[string]string{"If-None-Match": gzETag})
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the gzip ETag does not match the plain body")

	// HEAD gives the headers only.
	resp = uiRequest(t, h, http.MethodHead, "/graph", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, readAll(t, resp))
	assert.NotEmpty(t, resp.Header.Get("Content-Length"))
}

// The page is served before the store is ready (and during shutdown); the API is not.
func TestUIServedWhileNotReady(t *testing.T) {
	h := uiHandler(t, false)
	resp := uiRequest(t, h, http.MethodGet, "/graph", nil)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp = uiRequest(t, h, http.MethodGet, "/api/v1/query?query=1", nil)
	readAll(t, resp)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

// The page is served by a running extension on its port (the whole server path: confighttp).
func TestUIThroughExtension(t *testing.T) {
	base := startTestExtension(t, nil)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)

	r := get(t, base, "/graph", nil)
	assert.Equal(t, http.StatusOK, r.code)
	assert.Contains(t, r.body, `src="assets/app.js?v=`)
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                    false,
		"gzip":                true,
		"GZIP":                true,
		"deflate, gzip;q=1.0": true,
		"br":                  false,
		"gzip;q=0":            false,
		"gzip; q=0":           false,
		"*":                   true,
		"identity, *;q=0":     false,
	} {
		assert.Equal(t, want, acceptsGzip(header), header)
	}
}
