package workload

import (
	"context"
	"fmt"
	"math"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Report is the result of reading a workload back and checking it against the ledgers.
type Report struct {
	Streams []StreamReport
}

// StreamReport is the check of one stream.
type StreamReport struct {
	Name, Kind string
	// Acked is the number of samples of acknowledged rounds: each must be read back with its
	// value. Found is how many were.
	Acked, Found int64
	// Unacked is the number of samples of rounds not acknowledged (in flight at a kill, refused,
	// timed out) that were read back, with their value: allowed.
	Unacked int64
	// Missing are acknowledged samples not read back; Wrong are samples read back that are not
	// the stream's (another value, another timestamp, a timestamp twice, a round never sent, a
	// series that is not the stream's).
	Missing, Wrong int64
	// Examples are the first problems, described.
	Examples []string
}

const maxExamples = 5

func (r *StreamReport) problem(format string, args ...any) {
	if len(r.Examples) < maxExamples {
		r.Examples = append(r.Examples, fmt.Sprintf(format, args...))
	}
}

// Acked returns the acknowledged samples of every stream; Lost the missing ones and Wrong the
// wrong ones.
func (r Report) Acked() (n int64) {
	for _, s := range r.Streams {
		n += s.Acked
	}
	return n
}

// Lost is the number of acknowledged samples not read back.
func (r Report) Lost() (n int64) {
	for _, s := range r.Streams {
		n += s.Missing
	}
	return n
}

// Wrong is the number of samples read back that no stream sent.
func (r Report) Wrong() (n int64) {
	for _, s := range r.Streams {
		n += s.Wrong
	}
	return n
}

// Unacked is the number of samples of unacknowledged rounds read back (allowed).
func (r Report) Unacked() (n int64) {
	for _, s := range r.Streams {
		n += s.Unacked
	}
	return n
}

// Problems describes the first problems of every stream, "" when there are none.
func (r Report) Problems() string {
	var out string
	for _, s := range r.Streams {
		if s.Missing == 0 && s.Wrong == 0 {
			continue
		}
		out += fmt.Sprintf("%s: %d of %d acknowledged samples missing, %d wrong samples; first: %v\n", s.Name, s.Missing, s.Acked, s.Wrong, s.Examples)
	}
	return out
}

// Verify reads every stream back through the Prometheus HTTP API (one range selector per
// query of the stream, over all its rounds) and checks it against the stream's ledger. The
// streams must be stopped.
func (w *Workload) Verify(ctx context.Context, api promv1.API) (Report, error) {
	endMs := w.Config.End.UnixMilli()
	stepMs := w.Config.Step.Milliseconds()
	// The range covers round 0 and a minute more; the selector's range is open on the left.
	span := int64(w.Config.Rounds)*stepMs/1000 + 60
	var rep Report
	for _, st := range w.Streams {
		var matrix model.Matrix
		for _, q := range st.queries {
			res, _, _, err := api.Query(ctx, fmt.Sprintf("%s[%ds]", q, span), time.UnixMilli(endMs))
			if err != nil {
				return rep, fmt.Errorf("%s: query %s: %w", st.Name, q, err)
			}
			m, ok := res.(model.Matrix)
			if !ok {
				return rep, fmt.Errorf("%s: query %s: a %s, want a matrix", st.Name, q, res.Type())
			}
			matrix = append(matrix, m...)
		}
		rep.Streams = append(rep.Streams, st.check(matrix, endMs, stepMs))
	}
	return rep, nil
}

// check compares the series read back with the ledger.
func (st *Stream) check(matrix model.Matrix, endMs, stepMs int64) StreamReport {
	ledger, attempted := st.Ledger()
	rep := StreamReport{Name: st.Name, Kind: st.Kind}
	firstMs := endMs - int64(st.Rounds-1)*stepMs
	// found[key][r]: 0 round r of the series not read back, 1 read back with its value, 2 read
	// back with another value (so an acknowledged sample is missing too).
	found := map[string][]uint8{}
	for _, ss := range matrix {
		key := st.keyOf(ss.Metric)
		if key == "" {
			rep.Wrong += int64(len(ss.Values))
			rep.problem("series %s is not one of the stream's", ss.Metric)
			continue
		}
		if found[key] != nil {
			rep.Wrong += int64(len(ss.Values))
			rep.problem("series %s read back twice", ss.Metric)
			continue
		}
		rounds := make([]uint8, attempted)
		found[key] = rounds
		for _, p := range ss.Values {
			ts := int64(p.Timestamp)
			r := int((ts - firstMs) / stepMs)
			if (ts-firstMs)%stepMs != 0 || ts < firstMs || r >= attempted {
				rep.Wrong++
				rep.problem("%s: a sample at %d, which is no round sent (%d sent)", ss.Metric, ts, attempted)
				continue
			}
			if rounds[r] != 0 {
				rep.Wrong++
				rep.problem("%s: round %d (@%d) read back twice", ss.Metric, r, ts)
				continue
			}
			if want := st.value(key, r); float64(p.Value) != want && !(math.IsNaN(want) && math.IsNaN(float64(p.Value))) {
				rounds[r] = 2
				rep.Wrong++
				rep.problem("%s: round %d (@%d) = %v, sent %v", ss.Metric, r, ts, p.Value, want)
				continue
			}
			rounds[r] = 1
			if r < len(ledger) && ledger[r] {
				rep.Found++
			} else {
				rep.Unacked++
			}
		}
	}
	for _, key := range st.keys {
		rounds := found[key]
		for r, acked := range ledger {
			if !acked {
				continue
			}
			rep.Acked++
			if rounds == nil || rounds[r] != 1 {
				rep.Missing++
				rep.problem("series %s: acknowledged round %d (@%d) missing", key, r, firstMs+int64(r)*stepMs)
			}
		}
	}
	return rep
}
