package conformance

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
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
	// HasData is true when the reference answered with at least one sample.
	HasData bool
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
				diff, hasData := compareCase(ctx, ref, sut, cases[i], r)
				results[i] = Result{Case: cases[i], Diff: diff, HasData: hasData}
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
// the reference does, and when both answer the answers must be equal (Diff). It also reports
// whether the reference's answer holds any sample.
func compareCase(ctx context.Context, ref, sut v1.API, c Case, r v1.Range) (string, bool) {
	diff, refVal := compareAnswers(ctx, ref, sut, c, r)
	return diff, hasSamples(refVal)
}

func hasSamples(v model.Value) bool {
	switch v := v.(type) {
	case model.Matrix:
		for _, s := range v {
			if len(s.Values)+len(s.Histograms) > 0 {
				return true
			}
		}
	case model.Vector:
		return len(v) > 0
	case *model.Scalar, *model.String:
		return true
	}
	return false
}

func compareAnswers(ctx context.Context, ref, sut v1.API, c Case, r v1.Range) (string, model.Value) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	refVal, _, _, refErr := ref.QueryRange(ctx, c.Query, r)
	gotVal, _, _, gotErr := sut.QueryRange(ctx, c.Query, r)
	if (refErr != nil) != c.ShouldFail {
		if refErr != nil {
			return fmt.Sprintf("the reference failed, which the query set does not expect: %v", refErr), nil
		}
		return "the reference succeeded, but the query set expects an error", refVal
	}
	if (gotErr != nil) != c.ShouldFail {
		if gotErr != nil {
			return fmt.Sprintf("error where the reference answers: %v", gotErr), refVal
		}
		return fmt.Sprintf("answered where the reference fails with: %v", refErr), nil
	}
	if c.ShouldFail {
		return "", nil
	}
	return Diff(refVal, gotVal), refVal
}
