package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// TestQueryAnswersGzipped: through the binary, a query_range and a query answered gzipped (as to
// Grafana or any client that accepts gzip) decompress to exactly the bytes of the plain answer,
// with Prometheus's headers.
func TestQueryAnswersGzipped(t *testing.T) {
	const series, samples = 200, 240 // an hour at 15 s
	cfg, c, gen := startLoaded(t, "metricstor (gzip)", series, samples)
	defer c.Stop(time.Minute)
	end := time.UnixMilli(gen.Timestamp(samples - 1))
	// No transparent decompression: the test reads the bytes on the wire.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: time.Minute}
	get := func(t *testing.T, target, acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, target, nil)
		if err != nil {
			t.Fatal(err)
		}
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	sec := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	start := time.UnixMilli(gen.Timestamp(0)).Truncate(time.Second)
	for _, target := range []string{
		cfg.Ports.PromQLURL() + "/api/v1/query_range?" + url.Values{"query": {`{job="loadgen"}`},
			"start": {sec(start)}, "end": {sec(end)}, "step": {"60"}}.Encode(),
		cfg.Ports.PromQLURL() + "/api/v1/query?" + url.Values{"query": {`{job="loadgen"}[1h]`}, "time": {sec(end)}}.Encode(),
	} {
		plainResp, plain := get(t, target, "")
		if plainResp.StatusCode != http.StatusOK || plainResp.Header.Get("Content-Encoding") != "" || !bytes.Contains(plain, []byte(`"status":"success"`)) {
			t.Fatalf("%s: plain answer %s, Content-Encoding %q: %.300s", target, plainResp.Status, plainResp.Header.Get("Content-Encoding"), plain)
		}
		resp, zipped := get(t, target, "gzip")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("%s: gzip answer %s, Content-Encoding %q, Vary %q", target, resp.Status, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(zipped))
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		unzipped, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", target, err)
		}
		if !bytes.Equal(unzipped, plain) {
			t.Fatalf("%s: the gzipped answer (%d bytes, %d unzipped) differs from the plain one (%d bytes)", target, len(zipped), len(unzipped), len(plain))
		}
		if len(zipped) >= len(plain)/2 {
			t.Errorf("%s: gzip took %d bytes to %d only", target, len(plain), len(zipped))
		}
		t.Logf("%s: %d bytes, %d gzipped", target, len(plain), len(zipped))
	}
}
