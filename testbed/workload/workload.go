// Package workload is the ledgered load of the kill -9 loop and of the soak: remote write
// (testbed/loadgen's series and values) and OTLP (gRPC and HTTP, the collector's pdata clients)
// senders that each keep a ledger of the rounds the server acknowledged, then read everything
// back through the Prometheus HTTP API and check it against the ledgers: every acknowledged
// sample is there with its value, a sample whose request was not acknowledged may or may not be
// there (but with its value), and nothing else is (no other timestamp, no duplicate, no other
// value).
//
// A stream is one sender: it sends rounds 0, 1, 2, ... in order, one request per round, each
// round one sample of each of its series at the round's timestamp. A round whose request fails
// with a retryable error (the server down, refusing, timing out) is sent again, with the same
// samples, until it is acknowledged or the stream is stopped; a round refused permanently
// (4xx, gRPC InvalidArgument) is left unacknowledged and the stream goes on.
package workload // import "github.com/metricstor/metricstor/testbed/workload"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
)

// Outcome classifies one attempt of a request.
type Outcome int

const (
	// Acked: 2xx, gRPC OK with nothing rejected.
	Acked Outcome = iota
	// Refused: the server answered with a retryable refusal (5xx, 429, gRPC Unavailable or
	// ResourceExhausted from the server).
	Refused
	// Rejected: the server refused permanently (4xx but 429, gRPC InvalidArgument, a partial
	// success with rejected data points).
	Rejected
	// Timeout: no answer within the request timeout.
	Timeout
	// Down: no answer, the connection was refused or broken (the server is not running).
	Down
	// Cancelled: the sender was stopped while the request was in flight.
	Cancelled
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"acked", "refused", "rejected", "timeout", "down", "cancelled"}

func (o Outcome) String() string { return outcomeNames[o] }

// Counts are the attempts of the requests of one kind of sender, by outcome, and the samples
// acknowledged. Safe for concurrent use.
type Counts struct {
	attempts [numOutcomes]atomic.Int64
	samples  atomic.Int64
}

// Attempts returns the number of attempts with outcome o.
func (c *Counts) Attempts(o Outcome) int64 { return c.attempts[o].Load() }

// Samples returns the number of samples acknowledged.
func (c *Counts) Samples() int64 { return c.samples.Load() }

func (c *Counts) add(o Outcome) { c.attempts[o].Add(1) }

// classifyTransport classifies an error that came without an answer from the server.
func classifyTransport(err error) Outcome {
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return Cancelled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return Timeout
	default:
		return Down
	}
}

// permanentError marks a round the server refused permanently: it is not sent again.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Stream is one sender with its ledger.
type Stream struct {
	Name   string
	Kind   string // "remote write", "otlp grpc", "otlp http"
	Series int    // series of the stream: samples per round
	Rounds int    // the last round is Rounds-1

	// send sends round r once (its own retries inside, if any); nil when acknowledged.
	send func(ctx context.Context, r int) error
	// queries are the PromQL selectors that read the stream's series back (and no other's).
	queries []string
	// keys are the identities of the stream's series; keyOf returns the identity of a series
	// read back ("" for one that is not the stream's); value is the value of a series at round r.
	keys  []string
	keyOf func(m model.Metric) string
	value func(key string, r int) float64

	mu        sync.Mutex
	ledger    []bool // ledger[r]: round r was acknowledged; len(ledger) rounds are settled
	attempted int    // rounds [0, attempted) were sent at least once
}

// Ledger returns the settled rounds (ledger[r] true when round r was acknowledged) and the
// number of rounds sent at least once (a round sent but not settled was in flight when the
// stream stopped).
func (s *Stream) Ledger() (ledger []bool, attempted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bool(nil), s.ledger...), s.attempted
}

// AckedRounds returns the number of acknowledged rounds.
func (s *Stream) AckedRounds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ok := range s.ledger {
		if ok {
			n++
		}
	}
	return n
}

// Run sends rounds from the first unsettled one on, one every pace at most (0: as fast as the
// server answers), retrying a round that failed with a retryable error every retryEvery, until
// ctx is done or the last round is settled. It returns ErrRoundsExhausted in the latter case.
func (s *Stream) Run(ctx context.Context, pace, retryEvery time.Duration) error {
	next := time.Now()
	for {
		s.mu.Lock()
		r := len(s.ledger)
		if r >= s.Rounds {
			s.mu.Unlock()
			return fmt.Errorf("%s: %w (%d)", s.Name, ErrRoundsExhausted, s.Rounds)
		}
		s.attempted = max(s.attempted, r+1)
		s.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		err := s.send(ctx, r)
		var perm permanentError
		switch {
		case err == nil || errors.As(err, &perm):
			s.mu.Lock()
			s.ledger = append(s.ledger, err == nil)
			s.mu.Unlock()
			next = next.Add(pace)
			if d := time.Until(next); d > 0 {
				if !sleep(ctx, d) {
					return nil
				}
			} else {
				next = time.Now()
			}
		default:
			if !sleep(ctx, retryEvery) {
				return nil
			}
		}
	}
}

// ErrRoundsExhausted: a stream sent its last round.
var ErrRoundsExhausted = errors.New("every round sent")

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Settled returns the number of settled rounds (acknowledged or refused for good).
func (s *Stream) Settled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ledger)
}
