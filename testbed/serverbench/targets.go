package serverbench

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// ScrapeJob is the job name of the scrape targets' series.
const ScrapeJob = "serverbench"

// Targets are node-exporter-like scrape targets on loopback, one listener each: families of 20
// series (a device and a mode label), counters and gauges alternating, whose values are a function
// of the second of the scrape and the target, so every server scraping them sees the same kind of
// data.
type Targets struct {
	Addrs  []string
	Series int // per target
}

// StartTargets starts n targets of series series each (a multiple of 20); they stop with the test.
func StartTargets(t testing.TB, n, series int) *Targets {
	t.Helper()
	if series <= 0 || series%20 != 0 {
		t.Fatalf("scrape targets: %d series per target, want a positive multiple of 20", series)
	}
	tg := &Targets{Series: series}
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tg.Addrs = append(tg.Addrs, ln.Addr().String())
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			_, _ = w.Write(exposition(i, series, time.Now().Unix()))
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	return tg
}

// exposition is target's page at second now, in the text format.
func exposition(target, series int, now int64) []byte {
	var b strings.Builder
	for f := range series / 20 {
		counter := f%2 == 0
		name, typ := fmt.Sprintf("node_bench_%03d", f), "gauge"
		if counter {
			name, typ = name+"_total", "counter"
		}
		fmt.Fprintf(&b, "# HELP %s A family of the benchmark's targets.\n# TYPE %s %s\n", name, name, typ)
		for k := range 20 {
			var v float64
			if counter {
				v = float64(now*int64(k+1)*int64(target+1)) / 100
			} else {
				v = float64((now/7+int64(k*13+f*7+target))%4096) * 4096
			}
			b.WriteString(name)
			b.WriteString(`{device="dev`)
			b.WriteString(strconv.Itoa(k))
			b.WriteString(`",mode="m`)
			b.WriteString(strconv.Itoa(f % 8))
			b.WriteString(`"} `)
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
			b.WriteByte('\n')
		}
	}
	return []byte(b.String())
}

// ScrapeConfig is a Prometheus configuration that scrapes the targets every interval.
func (tg *Targets) ScrapeConfig(interval time.Duration) string {
	d := model.Duration(interval).String()
	return fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: %s\n    static_configs:\n      - targets: ['%s']\n",
		d, d, ScrapeJob, strings.Join(tg.Addrs, "', '"))
}
