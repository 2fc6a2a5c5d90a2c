package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	promstorage "github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/internal/passthrough"
	"github.com/metricstor/metricstor/storage"
)

// refusingStore wraps a store: appendErr (when set) may refuse an Append by series, commitErr
// (when set) refuses every Commit after rolling the batch back.
type refusingStore struct {
	*tsdbStore
	appendErr func(labels.Labels) error
	commitErr error
}

func (s refusingStore) AppenderV2(ctx context.Context) promstorage.AppenderV2 {
	return refusingAppender{AppenderV2: s.tsdbStore.AppenderV2(ctx), s: s}
}

type refusingAppender struct {
	promstorage.AppenderV2
	s refusingStore
}

func (a refusingAppender) Append(ref promstorage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts promstorage.AOptions) (promstorage.SeriesRef, error) {
	if a.s.appendErr != nil {
		if err := a.s.appendErr(ls); err != nil {
			return 0, err
		}
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

func (a refusingAppender) Commit() error {
	if a.s.commitErr != nil {
		_ = a.AppenderV2.Rollback()
		return a.s.commitErr
	}
	return a.AppenderV2.Commit()
}

// otlpAnswer is the gRPC code the collector's OTLP receiver (v0.165, internal/errors
// GetStatusFromError) answers a consumer error with: the status found in the error chain, else
// Internal for a permanent error and Unavailable for any other. Its HTTP side maps
// InvalidArgument to 400 and Unavailable to 503 (TestOTLPReceiverAnswers runs the real receiver).
func otlpAnswer(err error) codes.Code {
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	if consumererror.IsPermanent(err) {
		return codes.Internal
	}
	return codes.Unavailable
}

// refusedFor returns an appendErr refusing the series whose state label is state with err.
func refusedFor(state string, err error) func(labels.Labels) error {
	return func(ls labels.Labels) error {
		if ls.Get("state") == state {
			return err
		}
		return nil
	}
}

// twoGauges is one batch of two series: state "used" and state "free".
func twoGauges(t int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	addGauge(newResource(md), "memory.usage", point{"used", t, 1}, point{"free", t, 2})
	return md
}

// TestPushErrorAnswers checks, per way a push can fail, what is stored and what the error tells
// the receiver: permanent or retryable, the OTLP gRPC code and HTTP status, the cause, and for a
// partial write what was written.
func TestPushErrorAnswers(t *testing.T) {
	const id = `instance="pod-1", job="shop/checkout"`
	used := `{__name__="memory_usage_bytes", ` + id + `, state="used"}`
	free := `{__name__="memory_usage_bytes", ` + id + `, state="free"}`
	unavailable := fmt.Errorf("%w: no space left on device", storage.ErrUnavailable)
	limit := fmt.Errorf("%w: series has 5 labels, more than max_labels_per_series (4)", storage.ErrLimitExceeded)

	for _, tc := range []struct {
		name      string
		appendErr func(labels.Labels) error
		commitErr error
		prior     func() pmetric.Metrics // pushed first, must succeed
		batch     func() pmetric.Metrics // default: twoGauges(t0)

		permanent bool
		code      codes.Code
		httpCode  int
		cause     error
		msg       string // the error contains it
		stored    []string
		written   *passthrough.PartialWriteError // counts, when a partial write
		reason    string                         // rejected counter reason, with count 1
	}{
		{
			// Prometheus's TSDB under these tests refuses a duplicate of a committed sample; ours
			// also one within the batch (testbed/e2e TestOTLPDuplicateAnswers).
			name: "duplicate keeps the rest",
			prior: func() pmetric.Metrics {
				md := pmetric.NewMetrics()
				addGauge(newResource(md), "memory.usage", point{"used", t0, 1})
				return md
			},
			batch: func() pmetric.Metrics {
				md := pmetric.NewMetrics()
				addGauge(newResource(md), "memory.usage", point{"used", t0, 3}, point{"free", t0, 2}, point{"free", t0 + 1000, 4})
				return md
			},
			permanent: true, code: codes.InvalidArgument, httpCode: http.StatusBadRequest,
			cause:  promstorage.ErrDuplicateSampleForTimestamp,
			msg:    "store rejected 1 of 3 samples (duplicate=1), the other 2 were stored; first duplicate: series " + used + " at 1700000000000",
			stored: []string{free, used}, written: &passthrough.PartialWriteError{Samples: 2}, reason: "duplicate",
		},
		{
			name:      "limit exceeded keeps the rest and names the limit",
			appendErr: refusedFor("free", limit),
			permanent: true, code: codes.InvalidArgument, httpCode: http.StatusBadRequest,
			cause:  storage.ErrLimitExceeded,
			msg:    "first limit_exceeded: series " + free + " at 1700000000000: limit exceeded: series has 5 labels, more than max_labels_per_series (4)",
			stored: []string{used}, written: &passthrough.PartialWriteError{Samples: 1}, reason: "limit_exceeded",
		},
		{
			name:      "everything refused",
			appendErr: func(labels.Labels) error { return limit },
			permanent: true, code: codes.InvalidArgument, httpCode: http.StatusBadRequest,
			cause: storage.ErrLimitExceeded, msg: "store rejected 2 of 2 samples (limit_exceeded=2), the other 0 were stored",
			written: &passthrough.PartialWriteError{}, reason: "",
		},
		{
			name:      "unavailable at append",
			appendErr: refusedFor("free", unavailable),
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			cause: storage.ErrUnavailable, msg: "no space left on device",
		},
		{
			name:      "unavailable at commit",
			commitErr: unavailable,
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			cause: storage.ErrUnavailable, msg: "commit 2 samples",
		},
		{
			name:      "not running",
			appendErr: func(labels.Labels) error { return storage.ErrNotRunning },
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			cause: storage.ErrNotRunning,
		},
		{
			name:      "limit at commit stores nothing and is not retried",
			commitErr: limit,
			permanent: true, code: codes.InvalidArgument, httpCode: http.StatusBadRequest,
			cause: storage.ErrLimitExceeded, msg: "max_labels_per_series (4)",
		},
		{
			name:      "unknown commit failure is retryable",
			commitErr: errors.New("pebble: something odd"),
			code:      codes.Unavailable, httpCode: http.StatusServiceUnavailable,
			msg: "pebble: something odd",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := newTSDBStore(t)
			h := newHarness(t, refusingStore{tsdbStore: base, appendErr: tc.appendErr, commitErr: tc.commitErr},
				func(cfg *Config) { cfg.TargetInfo = false })
			if tc.prior != nil {
				require.NoError(t, h.exp.ConsumeMetrics(context.Background(), tc.prior()))
			}
			batch := twoGauges(t0)
			if tc.batch != nil {
				batch = tc.batch()
			}
			err := h.exp.ConsumeMetrics(context.Background(), batch)
			require.Error(t, err)

			assert.Equal(t, tc.permanent, consumererror.IsPermanent(err), "permanent: %v", err)
			assert.Equal(t, tc.code, otlpAnswer(err), "OTLP gRPC code of %v", err)
			assert.Equal(t, tc.httpCode, consumererror.ToHTTPStatus(err), "HTTP status of %v", err)
			ce, ok := errors.AsType[*consumererror.Error](err)
			require.True(t, ok, "a consumererror.Error carries the status: %v", err)
			assert.Equal(t, !tc.permanent, ce.IsRetryable())
			if tc.cause != nil {
				assert.ErrorIs(t, err, tc.cause)
			}
			assert.Contains(t, err.Error(), tc.msg)

			assert.ElementsMatch(t, tc.stored, keys(dump(t, base)))
			pw, ok := errors.AsType[*passthrough.PartialWriteError](err)
			if tc.written == nil {
				assert.False(t, ok, "nothing stored: not a partial write: %v", err)
			} else if assert.True(t, ok, "a partial write: %v", err) {
				assert.Equal(t, [3]int{tc.written.Samples, tc.written.Histograms, tc.written.Exemplars}, [3]int{pw.Samples, pw.Histograms, pw.Exemplars})
			}
			if tc.reason != "" {
				assert.Equal(t, int64(1), h.counter(t, "metricstor_exporter_samples_rejected", attribute.String("reason", tc.reason)))
			}
		})
	}
}

// TestPushSuccessIsNil: a batch the store takes whole returns no error at all (OTLP 200 / OK).
func TestPushSuccessIsNil(t *testing.T) {
	h := newHarness(t, newTSDBStore(t), nil)
	require.NoError(t, h.exp.ConsumeMetrics(context.Background(), twoGauges(t0)))
}
