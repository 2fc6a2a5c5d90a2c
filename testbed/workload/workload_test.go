package workload

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

// testStream is an OTLP stream of 1 series per metric over 4 rounds 1 s apart ending at 10 s.
func testStream() *Stream {
	cfg := Config{OTLPSeries: 1, Rounds: 4}
	return newOTLPStream("s", KindOTLPHTTP, cfg, nil)
}

const (
	testEndMs  = 10_000
	testStepMs = 1000
)

func series(name string, rounds ...int) *model.SampleStream {
	ss := &model.SampleStream{Metric: model.Metric{"__name__": model.LabelValue(name), "series": "0"}}
	for _, r := range rounds {
		v := gaugeValue(0, r)
		if name == OTLPCounter {
			v = counterValue(0, r)
		}
		ss.Values = append(ss.Values, model.SamplePair{Timestamp: model.Time(7000 + r*testStepMs), Value: model.SampleValue(v)})
	}
	return ss
}

func TestCheck(t *testing.T) {
	st := testStream()
	st.ledger = []bool{true, false, true} // round 1 refused, round 3 in flight
	st.attempted = 4

	// Everything acknowledged is there; round 3 (in flight) is there for the gauge only: fine.
	rep := st.check(model.Matrix{series(OTLPGauge, 0, 2, 3), series(OTLPCounter, 0, 2)}, testEndMs, testStepMs)
	if rep.Acked != 4 || rep.Found != 4 || rep.Unacked != 1 || rep.Missing != 0 || rep.Wrong != 0 {
		t.Fatalf("clean read back: %+v", rep)
	}

	// The counter's round 2 lost, the gauge's round 0 with another value, a sample between
	// rounds, an unknown series.
	bad := series(OTLPGauge, 0, 2)
	bad.Values[0].Value++
	bad.Values = append(bad.Values, model.SamplePair{Timestamp: 9500, Value: 1})
	other := &model.SampleStream{Metric: model.Metric{"__name__": "other"}, Values: []model.SamplePair{{Timestamp: 7000, Value: 1}}}
	rep = st.check(model.Matrix{bad, series(OTLPCounter, 0), other}, testEndMs, testStepMs)
	if rep.Missing != 2 || rep.Wrong != 3 || rep.Found != 2 {
		t.Fatalf("bad read back: %+v", rep)
	}
	if !strings.Contains(strings.Join(rep.Examples, "\n"), "missing") {
		t.Fatalf("examples name no missing sample: %v", rep.Examples)
	}

	// A round never sent, and a round twice.
	late := series(OTLPGauge, 0, 2)
	late.Values = append(late.Values, model.SamplePair{Timestamp: 7000 + 4*testStepMs, Value: 1})
	twice := series(OTLPCounter, 0, 2, 2)
	rep = st.check(model.Matrix{late, twice}, testEndMs, testStepMs)
	if rep.Wrong != 2 || rep.Missing != 0 {
		t.Fatalf("late and duplicate samples: %+v", rep)
	}
}

// TestRun drives a stream on a fake sender: a retryable failure is sent again, a permanent one
// is settled unacknowledged, and the stream stops when its rounds are used up.
func TestRun(t *testing.T) {
	st := testStream()
	calls := map[int]int{}
	st.send = func(_ context.Context, r int) error {
		calls[r]++
		switch {
		case r == 1 && calls[r] < 3:
			return errors.New("down")
		case r == 2:
			return permanentError{errors.New("400")}
		}
		return nil
	}
	err := st.Run(context.Background(), 0, time.Millisecond)
	if !errors.Is(err, ErrRoundsExhausted) {
		t.Fatalf("Run: %v", err)
	}
	ledger, attempted := st.Ledger()
	if want := []bool{true, true, false, true}; len(ledger) != 4 || ledger[0] != want[0] || ledger[1] != want[1] || ledger[2] != want[2] || ledger[3] != want[3] || attempted != 4 {
		t.Fatalf("ledger %v, %d attempted", ledger, attempted)
	}
	if calls[1] != 3 || calls[2] != 1 || st.AckedRounds() != 3 {
		t.Fatalf("calls %v, %d acked", calls, st.AckedRounds())
	}

	// A stopped stream sends nothing.
	st = testStream()
	st.send = func(context.Context, int) error { t.Fatal("sent after stop"); return nil }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Run(ctx, 0, time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
