package queryext

import (
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// gzipAnswers compresses the answers of /api/v1/query and /api/v1/query_range where Prometheus's
// API would gzip them (the first coding of Accept-Encoding that it knows is gzip), with the same
// headers, but at gzip's fastest level and with writers taken from a pool. Prometheus's handler
// makes a new writer per answer at the default level: for a range query over a day (80-160
// series of 1,440 points, 4-6 MB of JSON) that was 55 ms of CPU against 28 at the fastest level,
// for an answer 8 % larger (measured on such a JSON). Other endpoints, and clients that ask for
// deflate, are served by Prometheus's handler as before.
type gzipAnswers struct{ next http.Handler }

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

func (h gzipAnswers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !prometheusPicksGzip(r.Header.Get("Accept-Encoding")) {
		h.next.ServeHTTP(w, r)
		return
	}
	// Prometheus's handler sees no Accept-Encoding, so it writes plain JSON into ours (it still
	// adds its Vary: Accept-Encoding).
	inner := r.Clone(r.Context())
	inner.Header.Del("Accept-Encoding")
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(w)
	w.Header().Set("Content-Encoding", "gzip")
	h.next.ServeHTTP(&gzipResponseWriter{ResponseWriter: w, zw: zw}, inner)
	_ = zw.Close()
	zw.Reset(io.Discard) // drop the reference to w
	gzipWriters.Put(zw)
}

// prometheusPicksGzip is the choice of Prometheus's util/httputil.CompressionHandler: the first
// of the listed codings, taken literally, that is gzip or deflate.
func prometheusPicksGzip(header string) bool {
	for coding := range strings.SplitSeq(header, ",") {
		switch strings.TrimSpace(coding) {
		case "gzip":
			return true
		case "deflate":
			return false
		}
	}
	return false
}

// gzipResponseWriter writes the body through zw. The length of the uncompressed answer, if the
// handler sets it, is not the body's.
type gzipResponseWriter struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (g *gzipResponseWriter) WriteHeader(code int) {
	g.Header().Del("Content-Length")
	g.ResponseWriter.WriteHeader(code)
}

func (g *gzipResponseWriter) Write(p []byte) (int, error) {
	g.Header().Del("Content-Length")
	return g.zw.Write(p)
}
