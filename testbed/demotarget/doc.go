// Package demotarget serves, in Prometheus text format, the metric families of the PromLabs demo
// service that the PromQL compliance query set is written against (one scrape of it is in
// testbed/conformance/testdata/demo-metrics-sample.txt): same names, label names, label values,
// types and HELP texts, with values that move like real ones. Counters grow at a varying rate and
// reset when the simulated process restarts, gauges wander, the histogram observes request
// durations into classic buckets, a batch job runs and sometimes fails, and
// demo_intermittent_metric is exposed only half of the time.
//
// Every value is a pure function of the seed, the instance number and the scrape time in whole
// seconds, so two scrapes at the same second give the same answer and a run can be replayed (or
// history generated) from the seed alone.
package demotarget // import "github.com/metricstor/metricstor/testbed/demotarget"
