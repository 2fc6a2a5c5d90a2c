//go:build race

package queryext

// raceEnabled says the tests run under the race detector, where the slowest differential tests
// trim what they repeat (see TestSplitRangeQueriesMatchPrometheus).
const raceEnabled = true
