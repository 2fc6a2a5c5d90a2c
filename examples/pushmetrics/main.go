// Command pushmetrics pushes a few series to a running Metricstor with Prometheus remote write
// 1.0 (protobuf + snappy) through client_golang's remote write client (exp/api/remote), which
// retries 5xx and 429 answers with backoff, then prints how to query them back.
//
//	go run ./examples/pushmetrics -url http://127.0.0.1:9201/api/v1/write
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:9201/api/v1/write", "remote write URL of Metricstor")
	query := flag.String("query-url", "http://127.0.0.1:9090", "Prometheus HTTP API of Metricstor, for the printed examples")
	points := flag.Int("points", 5, "samples per series, 15 s apart, the last one now")
	flag.Parse()

	req := buildRequest(time.Now(), *points)
	client, err := newClient(*url, remoteapi.BackoffConfig{Min: time.Second, Max: 10 * time.Second, MaxRetries: 5})
	if err != nil {
		log.Fatal(err)
	}
	if err := push(context.Background(), client, req); err != nil {
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

// newClient returns a remote write client for the write URL url (the whole URL: no path is
// appended to it), retrying with the given backoff.
func newClient(url string, backoff remoteapi.BackoffConfig) (*remoteapi.API, error) {
	return remoteapi.NewAPI(url,
		remoteapi.WithAPIPath(""),
		remoteapi.WithAPIHTTPClient(&http.Client{Timeout: 30 * time.Second}),
		remoteapi.WithAPIBackoff(backoff))
}

// push sends req as remote write 1.0 and fails unless Metricstor answers 2xx, after the client's
// retries of 5xx and 429 answers (a 4xx other than 429 is final: the request itself is wrong).
func push(ctx context.Context, client *remoteapi.API, req *prompb.WriteRequest) error {
	_, err := client.Write(ctx, remoteapi.WriteV1MessageType, req,
		remoteapi.WithWriteRetryCallback(func(err error) { log.Printf("retrying: %v", err) }))
	return err
}
