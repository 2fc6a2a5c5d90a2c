package exporter

import (
	"go.opentelemetry.io/collector/consumer/consumererror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The errors of a push carry the answer an OTLP receiver gives its client, per the OTLP
// specification's "Failures" sections:
//
//   - refused data (the store refused samples for good; nothing or only part of the batch was
//     stored): gRPC InvalidArgument / HTTP 400, permanent, so neither exporterhelper nor the client
//     retries it. The OTLP specification would have a partly stored request answered with
//     success and `partial_success.rejected_data_points`, but the collector's OTLP receiver
//     (v0.165) answers every consumer error with an error status and no response body, so 400
//     naming the refused points is the nearest correct answer: the client must not retry it,
//     which is right because the rest is stored.
//   - a store that cannot write for now (not running, disk full, a failed commit, a timeout):
//     gRPC Unavailable / HTTP 503, retryable.
//
// The collector's OTLP receiver looks for the status with status.FromError, which finds a
// GRPCStatus method anywhere in the wrapped chain; without one it answers a permanent error with
// Internal / 500 (a server fault) and any other with Unavailable / 503. consumererror's
// OTLP gRPC error carries the same status for receivers that use consumererror.ToHTTPStatus or
// ToGRPCStatus. The chain keeps the cause, so errors.Is(err, storage.ErrUnavailable) and
// errors.As(err, *passthrough.PartialWriteError) still work.

// statusError gives err the gRPC status code an OTLP receiver answers with.
type statusError struct {
	err  error
	code codes.Code
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// GRPCStatus is the status the collector's OTLP receiver answers with (gRPC code, and the HTTP
// code it maps to).
func (e *statusError) GRPCStatus() *status.Status { return status.New(e.code, e.err.Error()) }

func withOTLPStatus(err error, code codes.Code) error {
	return consumererror.NewOTLPGRPCError(&statusError{err: err, code: code}, status.New(code, err.Error()))
}

// refusedError is the permanent error of data the store refused for good: InvalidArgument / 400.
func refusedError(err error) error {
	return consumererror.NewPermanent(withOTLPStatus(err, codes.InvalidArgument))
}

// unavailableError is the retryable error of a store that cannot write for now:
// Unavailable / 503.
func unavailableError(err error) error {
	return withOTLPStatus(err, codes.Unavailable)
}
