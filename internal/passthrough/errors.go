package passthrough

// PartialWriteError is what the metricstor exporter returns, wrapped in a permanent
// consumererror, when it committed part of a batch and refused the rest for good (samples the
// store rejected one by one: out of order, too old, duplicate timestamp, a configured limit,
// metrics it could not translate). Retrying the batch would not store the refused part and would
// offer the stored part again, so the error is permanent.
//
// The remote_write receiver finds it with errors.As to answer 400 with what was written, as
// Prometheus's own handler does for remote write 2.0: the X-Prometheus-Remote-Write-*-Written
// headers carry the counts below rather than zero. Any other error of the pipeline means nothing
// of the request is known to be stored.
type PartialWriteError struct {
	// Err says what was refused and why; it wraps the store's errors
	// (storage.ErrDuplicateSampleForTimestamp, storage.ErrLimitExceeded, ...).
	Err error
	// Samples (float samples, stale markers included), Histograms (native histograms) and
	// Exemplars count what the batch committed to the store.
	Samples, Histograms, Exemplars int
}

func (e *PartialWriteError) Error() string { return e.Err.Error() }

func (e *PartialWriteError) Unwrap() error { return e.Err }
