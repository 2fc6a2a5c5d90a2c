// Command pushmetrics pushes a few series to a running Metricstor with Prometheus remote write
// 1.0 (protobuf + snappy), then prints how to query them back.
//
//	go run ./examples/pushmetrics -url http://127.0.0.1:9201/api/v1/write
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9201/api/v1/write", "remote write URL of Metricstor")
	query := flag.String("query-url", "http://127.0.0.1:9090", "Prometheus HTTP API of Metricstor, for the printed examples")
	points := flag.Int("points", 5, "samples per series, 15 s apart, the last one now")
	flag.Parse()

	req := buildRequest(time.Now(), *points)
	if err := push(context.Background(), *url, req); err != nil {
		log.Fatal(err)
	}
	n := 0
	for _, ts := range req.Timeseries {
		n += len(ts.Samples)
	}
	fmt.Printf("pushed %d series, %d samples and metadata of %d families to %s\n\n", len(req.Timeseries), n, len(req.Metadata), *url)
	fmt.Fprintf(os.Stdout, `Query them back:

  curl -s '%[1]s/api/v1/query' --data-urlencode 'query=demo_requests_total'
  curl -s '%[1]s/api/v1/query' --data-urlencode 'query=rate(demo_requests_total[1m])'
  curl -s '%[1]s/api/v1/query_range' --data-urlencode 'query=demo_temperature_celsius' \
       --data-urlencode "start=$(( $(date +%%s) - 120 ))" --data-urlencode "end=$(date +%%s)" --data-urlencode step=15s
  curl -s '%[1]s/api/v1/metadata?metric=demo_requests_total'

  promtool query instant %[1]s 'demo_requests_total'
  promtool query series  %[1]s --match='{job="pushmetrics"}'
`, *query)
}

// buildRequest makes a counter per HTTP status, a gauge, and their metadata; the series are
// labelled job="pushmetrics", instance=<host name>.
func buildRequest(now time.Time, points int) *prompb.WriteRequest {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	req := &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "demo_requests_total", Help: "Requests served, by status code."},
		{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "demo_temperature_celsius", Help: "Temperature of the demo room.", Unit: "celsius"},
	}}
	first := now.Add(-time.Duration(points-1) * 15 * time.Second)
	add := func(f func(i int) float64, kv ...string) {
		ts := prompb.TimeSeries{}
		for i := 0; i+1 < len(kv); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: kv[i], Value: kv[i+1]})
		}
		for i := range points {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: first.Add(time.Duration(i) * 15 * time.Second).UnixMilli(), Value: f(i)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	// Labels sorted by name, as the specification asks of senders.
	add(func(i int) float64 { return float64(100 + 30*i) }, "__name__", "demo_requests_total", "code", "200", "instance", host, "job", "pushmetrics")
	add(func(i int) float64 { return float64(2 + i) }, "__name__", "demo_requests_total", "code", "500", "instance", host, "job", "pushmetrics")
	add(func(i int) float64 { return 21 + math.Sin(float64(i)) }, "__name__", "demo_temperature_celsius", "instance", host, "job", "pushmetrics", "room", "lab")
	return req
}

// push sends req as remote write 1.0 and fails unless Metricstor answers 2xx.
func push(ctx context.Context, url string, req *prompb.WriteRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	httpReq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return err
	}
	httpReq.Header.Set("Content-Type", "application/x-protobuf")
	httpReq.Header.Set("Content-Encoding", "snappy")
	httpReq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	httpReq.Header.Set("User-Agent", "metricstor-pushmetrics")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(httpReq)
	if err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}
