package receiver

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/internal/passthrough"
)

var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// putBodyBuffer returns a buffer to the pool unless an unusually large request grew it.
func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() <= 16<<20 {
		bodyBuffers.Put(b)
	}
}

// maxReportedErrors bounds how many rejected series a 400 response names.
const maxReportedErrors = 10

// Store decodes one remote write request (confighttp has checked its encoding; the body decodes
// as it is read, see snappyBody), sends the valid series into the pipeline (or, with direct
// writing, to the exporter: the same outcomes and errors) and tells Prometheus's
// handler what to answer (405 and 415 are the handler's own, before the body is read):
//   - 204 when everything was stored;
//   - 400 when the body is not snappy or not a valid message, when it carries more than
//     max_series_per_request series (nothing is written), when some series were invalid (the
//     valid ones are stored: a partial write; the body names the rejected ones), or when the
//     pipeline refused data permanently (the store rejected samples: out of order, duplicate,
//     a limit; the rest of the request is stored, as Prometheus's 2.0 handler does);
//   - 413 when the body or its decoded size exceeds max_request_body_size;
//   - 429 when the pipeline throttles, 503 for any other retryable refusal (senders retry).
//
// For 2.0 the X-Prometheus-Remote-Write-*-Written headers count what was stored: everything sent
// into the pipeline on success, what the exporter reports on a partial write
// (passthrough.PartialWriteError), zero when the pipeline refused the request.
func (r *remoteWriteReceiver) Store(req *http.Request, msgType remoteapi.WriteMessageType) (*remoteapi.WriteResponse, error) {
	wr := remoteapi.NewWriteResponse()
	// The body is read into a pooled buffer: decoding copies every string and slice out of it,
	// and the pipeline has returned before Store does, so nothing refers to it afterwards.
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBodyBuffer(buf)
	_, err := buf.ReadFrom(req.Body)
	// Done with the body: its decoded bytes go back to their pool.
	_ = req.Body.Close()
	body := buf.Bytes()
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			wr.SetStatusCode(http.StatusRequestEntityTooLarge)
			return wr, fmt.Errorf("request body exceeds max_request_body_size (%d bytes)", mbe.Limit)
		}
		if be, ok := errors.AsType[*bodyError](err); ok {
			wr.SetStatusCode(be.code)
			return wr, be
		}
		wr.SetStatusCode(http.StatusBadRequest)
		return wr, fmt.Errorf("read request body: %w", err)
	}

	conv := newConverter(r.meta)
	defer conv.release()
	conv.direct = r.writer != nil
	var numSeries int
	switch msgType {
	case remoteapi.WriteV1MessageType:
		// The strings of the pipeline data are copies (labelStrings), never the pooled buffer.
		if err := decodeV1(&conv.v1, body); err != nil {
			wr.SetStatusCode(http.StatusBadRequest)
			return wr, fmt.Errorf("decode remote write 1.0 request (prometheus.WriteRequest): %w", err)
		}
		numSeries = len(conv.v1.series)
	default:
		if err := decodeV2(&conv.v2, body, &conv.v2buf); err != nil {
			wr.SetStatusCode(http.StatusBadRequest)
			return wr, fmt.Errorf("decode remote write 2.0 request (io.prometheus.write.v2.Request): %w", err)
		}
		numSeries = len(conv.v2.Timeseries)
	}
	// Checked before the conversion to pipeline data, which costs most of a request's memory.
	if r.cfg.MaxSeriesPerRequest > 0 && numSeries > r.cfg.MaxSeriesPerRequest {
		wr.SetStatusCode(http.StatusBadRequest)
		return wr, fmt.Errorf("request has %d series, more than max_series_per_request (%d); nothing was written: send smaller requests (Prometheus: queue_config.max_samples_per_send)",
			numSeries, r.cfg.MaxSeriesPerRequest)
	}
	if msgType == remoteapi.WriteV1MessageType {
		conv.fromV1(&conv.v1)
	} else {
		conv.fromV2(&conv.v2)
	}

	ctx := req.Context()
	if conv.rejectedSamples > 0 {
		// Invalid data never reaches the pipeline; count it as refused.
		octx := r.obsrecv.StartMetricsOp(ctx)
		r.obsrecv.EndMetricsOp(octx, string(msgType), conv.rejectedSamples, consumererror.NewPermanent(errors.New("invalid series")))
	}
	var pipelineErr error
	if points := conv.samples + conv.histograms; points > 0 {
		octx := r.obsrecv.StartMetricsOp(ctx)
		var err error
		if conv.direct {
			err = r.writer.WriteSeries(octx, conv.directSeries())
		} else {
			err = r.next.ConsumeMetrics(octx, conv.md)
		}
		pw, partial := errors.AsType[*passthrough.PartialWriteError](err)
		partial = partial && pipelineStatus(err) == http.StatusBadRequest
		if partial {
			// The receiver's telemetry counts the stored points as accepted, the rest as refused.
			written := min(max(pw.Samples+pw.Histograms, 0), points)
			r.obsrecv.EndMetricsOp(octx, string(msgType), written, nil)
			if points > written {
				r.obsrecv.EndMetricsOp(r.obsrecv.StartMetricsOp(ctx), string(msgType), points-written, err)
			}
		} else {
			r.obsrecv.EndMetricsOp(octx, string(msgType), points, err)
		}
		if err != nil {
			code := pipelineStatus(err)
			r.settings.Logger.Debug("Pipeline refused remote write data", zap.Int("status", code), zap.Int("points", points), zap.Error(err))
			if !partial {
				// Nothing of the request is known to be stored: the headers say 0.
				wr.SetStatusCode(code)
				return wr, fmt.Errorf("pipeline refused the data: %w", err)
			}
			wr.Add(remoteapi.WriteResponseStats{Samples: pw.Samples, Histograms: pw.Histograms, Exemplars: pw.Exemplars})
			// The exporter's own message, without exporterhelper's "not retryable error: Permanent
			// error:" prefixes: err wraps pw.
			pipelineErr = fmt.Errorf("pipeline refused part of the data, the rest was written: %w", pw)
		} else {
			wr.Add(remoteapi.WriteResponseStats{Samples: conv.samples, Histograms: conv.histograms, Exemplars: conv.exemplars})
		}
	}

	if len(conv.errs) > 0 {
		r.settings.Logger.Debug("Remote write request with invalid series",
			zap.Int("rejected_series", len(conv.errs)), zap.Int("rejected_samples", conv.rejectedSamples), zap.String("first", conv.errs[0]))
		pipelineErr = errors.Join(conv.rejectionError(), pipelineErr)
	}
	if pipelineErr != nil {
		wr.SetStatusCode(http.StatusBadRequest)
		return wr, pipelineErr
	}
	return wr, nil
}

// rejectionError is the readable body of a partial write.
func (c *converter) rejectionError() error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d series rejected (%d samples, histograms and exemplars); the other series were written", len(c.errs), c.rejectedSamples)
	for i, e := range c.errs {
		if i == maxReportedErrors {
			fmt.Fprintf(&b, "\nand %d more", len(c.errs)-maxReportedErrors)
			break
		}
		b.WriteString("\n")
		b.WriteString(e)
	}
	return errors.New(b.String())
}

// pipelineStatus maps an error of the next consumer onto a remote write status code: permanent
// errors are 400 (senders drop the data; the metricstor exporter's refusals of stored-for-good
// samples are permanent, see passthrough.PartialWriteError), throttling is 429, anything else
// 503 (senders retry): the store not running or refusing writes for now, a failed commit, the
// memory limiter.
func pipelineStatus(err error) int {
	if consumererror.IsPermanent(err) {
		return http.StatusBadRequest
	}
	if ce, ok := errors.AsType[*consumererror.Error](err); ok {
		switch code := consumererror.ToHTTPStatus(ce); {
		case code == http.StatusTooManyRequests:
			return http.StatusTooManyRequests
		case !ce.IsRetryable() && code >= 400 && code < 500:
			return http.StatusBadRequest
		}
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted {
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}
