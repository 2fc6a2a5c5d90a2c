// Command loadgen sends a remote write 1.0 load (2.0 with -v2) to a server on loopback: -series series ×
// -samples samples, 15 s apart in sample time (the last one now), in requests of -batch samples
// from -senders concurrent senders. Round 0 (new series) and the other rounds (steady) are timed
// apart. It exits non-zero at the first request the server refuses (4xx) or that still fails
// after the retries (5xx, 429).
//
//	go run ./testbed/loadgen/cmd/loadgen -url http://127.0.0.1:9201/api/v1/write -series 10000
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/metricstor/metricstor/testbed/loadgen"
)

func main() {
	d := loadgen.DefaultConfig()
	cfg := loadgen.Config{}
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:9201/api/v1/write", "remote write endpoint (loopback only)")
	flag.IntVar(&cfg.Series, "series", d.Series, "number of series")
	flag.IntVar(&cfg.Samples, "samples", d.Samples, "samples per series (rounds)")
	flag.IntVar(&cfg.Senders, "senders", d.Senders, "concurrent senders, each owning a shard of the series")
	flag.IntVar(&cfg.BatchSize, "batch", d.BatchSize, "samples per request")
	flag.DurationVar(&cfg.Interval, "interval", d.Interval, "sample-time distance between rounds")
	flag.DurationVar(&cfg.Timeout, "timeout", d.Timeout, "bound of the whole run")
	flag.BoolVar(&cfg.V2, "v2", false, "send remote write 2.0 (io.prometheus.write.v2.Request) instead of 1.0")
	metadata := flag.Bool("metadata", true, "send the metric metadata first, in a request of its own (1.0; 2.0 sends it in every series)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	g, err := loadgen.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	c := g.Config()
	protocol := "1.0"
	if c.V2 {
		protocol = "2.0"
	}
	fmt.Printf("%d series × %d samples, %d senders, batches of %d, remote write %s to %s\n", c.Series, c.Samples, c.Senders, c.BatchSize, protocol, c.URL)
	if *metadata {
		if err := g.SendMetadata(ctx); err != nil {
			log.Fatalf("metadata: %v", err)
		}
	}
	report := func(phase string, s loadgen.Stats) {
		fmt.Printf("%-10s %10d samples %7d requests %5d retries %12d bytes %8.2fs %10.0f samples/s, latency p50 %s p99 %s p99.9 %s max %s\n",
			phase, s.Samples, s.Requests, s.Retries, s.Bytes, s.Elapsed.Seconds(), s.SamplesPerSecond(),
			s.Latency(0.5), s.Latency(0.99), s.Latency(0.999), s.Latency(1))
	}
	s, err := g.Run(ctx, 0, 1)
	if err != nil {
		log.Fatalf("new series: %v", err)
	}
	report("new-series", s)
	if c.Samples > 1 {
		s, err = g.Run(ctx, 1, c.Samples)
		if err != nil {
			log.Fatalf("steady: %v", err)
		}
		report("steady", s)
	}
}
