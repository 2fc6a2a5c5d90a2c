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

// Run runs every case as a range query over r against the reference and each system under test,
// parallel cases at a time. The reference answers each case once; that answer is compared with
// the answer of every system. results[i] are the results of suts[i], in the order of cases.
func Run(ctx context.Context, ref v1.API, suts []v1.API, cases []Case, r v1.Range, parallel int) [][]Result {
	results := make([][]Result, len(suts))
	for i := range suts {
		results[i] = make([]Result, len(cases))
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				for i, diff := range compareCase(ctx, ref, suts, cases[j], r) {
					results[i][j] = diff
				}
			}
		}()
	}
	for j := range cases {
		work <- j
	}
	close(work)
	wg.Wait()
	return results
}

// compareCase follows prometheus/compliance: the reference must fail exactly when the case says
// so (else the case fails, naming the reference), a system under test must fail exactly when
// the reference does, and when both answer the answers must be equal (Diff). It returns one
// result per system, each noting whether the reference's answer holds any sample.
func compareCase(ctx context.Context, ref v1.API, suts []v1.API, c Case, r v1.Range) []Result {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	refVal, _, _, refErr := ref.QueryRange(ctx, c.Query, r)
	results := make([]Result, len(suts))
	for i, sut := range suts {
		diff, refData := compareAnswers(ctx, refVal, refErr, sut, c, r)
		results[i] = Result{Case: c, Diff: diff, HasData: hasSamples(refData)}
	}
	return results
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

// compareAnswers compares the reference's answer (refVal, refErr) with the answer of sut. It
// returns the difference and the reference's answer when it counts as data.
func compareAnswers(ctx context.Context, refVal model.Value, refErr error, sut v1.API, c Case, r v1.Range) (string, model.Value) {
	if (refErr != nil) != c.ShouldFail {
		if refErr != nil {
			return fmt.Sprintf("the reference failed, which the query set does not expect: %v", refErr), nil
		}
		return "the reference succeeded, but the query set expects an error", refVal
	}
	gotVal, _, _, gotErr := sut.QueryRange(ctx, c.Query, r)
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
