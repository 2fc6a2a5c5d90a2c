// Package scrape holds the differential end-to-end test of scraping: a reference Prometheus and
// the otelcol-metricstor binary (the prometheus receiver, scrapereceiver, -> metricstor exporter)
// scrape the same targets, served by the test as static exposition text so that the values are
// equal, with the same scrape configuration; every series, value and metadata entry of the two
// servers' HTTP APIs is compared. The differences that remain are listed in knownDifferences
// with the reason (README.md, "Scraping"); any other difference, or a listed one that no longer
// occurs, fails the test.
//
// Run it from the repository root after `make build` and testbed/scripts/install-prometheus.sh:
//
//	METRICSTOR_BINARY=$PWD/bin/otelcol-metricstor go test -count=1 ./testbed/scrape
package scrape // import "github.com/metricstor/metricstor/testbed/scrape"
