package queryext // import "github.com/metricstor/metricstor/queryext"

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
)

// The query page: ui/dist is the bundle that `make ui` builds from ui/src (committed, so that a
// build needs only Go; `make ui-check` fails when it differs from the sources).
//
//go:embed ui/dist
var uiFS embed.FS

// uiPages are the paths that serve the page (index.html); the page picks what to show by the
// last path segment. /graph is the classic UI's query page, whose URLs (g0.expr=...) Alertmanager,
// generatorURLs and bookmarks hold; /query is Prometheus 3's name for it.
var uiPages = []string{"/graph", "/query", "/metadata", "/status", "/tsdb-status"}

// uiAsset is one embedded file, ready to serve.
type uiAsset struct {
	contentType string
	body        []byte
	gzipped     []byte // nil when gzip does not make it smaller
	etag        string // strong ETag of body; the gzipped variant adds -gz
}

// uiAssets maps a path under ui/dist (index.html, assets/app.js, ...) to its asset. It is built
// once, on the first request, so that a binary that never serves the page never pays for it.
var uiAssets = sync.OnceValues(func() (map[string]*uiAsset, error) {
	sub, err := fs.Sub(uiFS, "ui/dist")
	if err != nil {
		return nil, err
	}
	assets := map[string]*uiAsset{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		assets[p] = newUIAsset(p, body)
		return nil
	})
	if err != nil {
		return nil, err
	}
	index, ok := assets["index.html"]
	if !ok {
		return nil, fmt.Errorf("the embedded query page has no index.html")
	}
	// The page names its scripts and styles with their content hash (?v=...), so that a browser
	// may keep them for a year: a new binary's page names new URLs.
	html := index.body
	for p, a := range assets {
		if strings.HasPrefix(p, "assets/") {
			html = bytes.ReplaceAll(html, []byte(`"`+p+`"`), []byte(`"`+p+"?v="+a.etag[1:13]+`"`))
		}
	}
	assets["index.html"] = newUIAsset("index.html", html)
	return assets, nil
})

// uiContentTypes are the types of the bundle's files, fixed here rather than taken from the
// mime package, which lets the machine's /etc/mime.types override them.
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

func newUIAsset(name string, body []byte) *uiAsset {
	sum := sha256.Sum256(body)
	a := &uiAsset{
		contentType: uiContentTypes[path.Ext(name)],
		body:        body,
		etag:        `"` + hex.EncodeToString(sum[:16]) + `"`,
	}
	if a.contentType == "" {
		a.contentType = "application/octet-stream"
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(body)
	_ = zw.Close()
	if buf.Len() < len(body) {
		a.gzipped = buf.Bytes()
	}
	return a
}

// registerUI adds the query page's routes to mux. They are not behind the readiness gate: the
// page is static and embedded, so it can always be served, and a page opened before the store is
// ready (or while it shuts down) then shows the API's 503 where a query fails, instead of a
// bare "Service Unavailable" that hides which server answered.
func registerUI(mux *http.ServeMux) {
	// As Prometheus: / redirects to the query page (web.go, 302 Found).
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "graph", http.StatusFound)
	})
	for _, p := range uiPages {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			// The page itself is never cached without asking: it names the current assets.
			serveUIAsset(w, r, "index.html", "no-cache")
		})
	}
	mux.HandleFunc("GET /assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		cache := "no-cache"
		if r.URL.Query().Has("v") {
			cache = "public, max-age=31536000, immutable"
		}
		serveUIAsset(w, r, "assets/"+r.PathValue("file"), cache)
	})
}

// serveUIAsset writes the asset name with its content type and cacheControl, gzipped when the
// client accepts it, or 304 when the client has it (If-None-Match). An unknown name is a 404.
func serveUIAsset(w http.ResponseWriter, r *http.Request, name, cacheControl string) {
	assets, err := uiAssets()
	if err != nil {
		http.Error(w, "query page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	a, ok := assets[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	body, etag := a.body, a.etag
	if a.gzipped != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = a.gzipped, strings.TrimSuffix(a.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip (not with q=0).
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(coding) != "*" {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// etagMatches reports whether an If-None-Match header names etag (or is *).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
