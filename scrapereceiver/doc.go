// Package scrapereceiver is the `prometheus` receiver: it scrapes targets with Prometheus's own
// scrape and discovery managers, configured by a Prometheus configuration's global and
// scrape_configs, and hands every scrape to the pipeline in the passthrough encoding of the
// remote_write receiver (../internal/passthrough), so that the metricstor exporter stores what a
// Prometheus server scraping the same targets stores: the same series, values, metadata,
// synthetic series (up, scrape_*) and staleness markers. See README.md.
package scrapereceiver // import "github.com/metricstor/metricstor/scrapereceiver"
