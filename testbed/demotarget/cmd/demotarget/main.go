// Command demotarget serves instances of the demo service (package demotarget) on loopback, one
// per listen address, for a Prometheus server to scrape at /metrics.
//
//	demotarget -seed 1 -listen 127.0.0.1:10000,127.0.0.1:10001,127.0.0.1:10002
//
// The instance number of each address is its position in the list.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/metricstor/metricstor/testbed/demotarget"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:10000,127.0.0.1:10001,127.0.0.1:10002", "comma-separated listen addresses, one instance each")
	seed := flag.Uint64("seed", 1, "seed of the values: the same seed gives the same values at the same second")
	flag.Parse()

	errs := make(chan error)
	for i, addr := range strings.Split(*listen, ",") {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "demotarget: listen on %s: %v\n", addr, err)
			os.Exit(1)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", demotarget.Target{Seed: *seed, Instance: i})
		log.Printf("demotarget: instance %d serving http://%s/metrics", i, l.Addr())
		go func() { errs <- http.Serve(l, mux) }()
	}
	log.Fatalf("demotarget: %v", <-errs)
}
