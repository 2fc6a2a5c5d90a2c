package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// NewAPI returns a client of the Prometheus HTTP API at url.
func NewAPI(url string) (v1.API, error) {
	client, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("API client for %s: %w", url, err)
	}
	return v1.NewAPI(client), nil
}

// Result is the outcome of one case.
type Result struct {
	Case
	// Diff is empty when the case passed, else why it failed: the first difference of the two
	// answers, or an error one side gave and the other did not.
	Diff string
}

// Passed reports whether the case passed.
func (r Result) Passed() bool { return r.Diff == "" }

// Run runs every case as a range query over r against the reference and the system under test,
// parallel cases at a time, and returns the results in the order of cases.
func Run(ctx context.Context, ref, sut v1.API, cases []Case, r v1.Range, parallel int) []Result {
	results := make([]Result, len(cases))
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = Result{Case: cases[i], Diff: compareCase(ctx, ref, sut, cases[i], r)}
			}
		}()
	}
	for i := range cases {
		work <- i
	}
	close(work)
	wg.Wait()
	return results
}

// compareCase follows prometheus/compliance: the reference must fail exactly when the case says
// so (else the case fails, naming the reference), the system under test must fail exactly when
// the reference does, and when both answer the answers must be equal (Diff).
func compareCase(ctx context.Context, ref, sut v1.API, c Case, r v1.Range) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	refVal, _, _, refErr := ref.QueryRange(ctx, c.Query, r)
	gotVal, _, _, gotErr := sut.QueryRange(ctx, c.Query, r)
	if (refErr != nil) != c.ShouldFail {
		if refErr != nil {
			return fmt.Sprintf("the reference failed, which the query set does not expect: %v", refErr)
		}
		return "the reference succeeded, but the query set expects an error"
	}
	if (gotErr != nil) != c.ShouldFail {
		if gotErr != nil {
			return fmt.Sprintf("error where the reference answers: %v", gotErr)
		}
		return fmt.Sprintf("answered where the reference fails with: %v", refErr)
	}
	if c.ShouldFail {
		return ""
	}
	return Diff(refVal, gotVal)
}
