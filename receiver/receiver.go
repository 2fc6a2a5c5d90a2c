package receiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/internal/passthrough"
)

// WritePath is the path remote write senders post to.
const WritePath = "/api/v1/write"

// remoteWriteReceiver serves /api/v1/write and hands what it decodes to the next consumer.
type remoteWriteReceiver struct {
	cfg      *Config
	settings receiver.Settings
	next     consumer.Metrics
	obsrecv  *receiverhelper.ObsReport
	meta     *metadataCache

	// writer takes the series instead of next when the configuration allows it (direct_write,
	// passthrough.Routes); nil: pipeline data to next. Set by Start before serving.
	writer passthrough.SeriesWriter

	// Set by Start, read by Shutdown; the collector never calls them concurrently.
	server   *http.Server
	listener net.Listener
	wg       sync.WaitGroup
}

func newRemoteWriteReceiver(cfg *Config, set receiver.Settings, next consumer.Metrics) (*remoteWriteReceiver, error) {
	obsrecv, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID:             set.ID,
		Transport:              "http",
		ReceiverCreateSettings: set,
	})
	if err != nil {
		return nil, fmt.Errorf("remote_write receiver: create obsreport: %w", err)
	}
	return &remoteWriteReceiver{
		cfg:      cfg,
		settings: set,
		next:     next,
		obsrecv:  obsrecv,
		meta:     newMetadataCache(cfg.MetadataCacheSize),
	}, nil
}

// handler returns the HTTP handler of the receiver, without confighttp's wrapping. Protocol
// negotiation (405, 415 for a content type, the 2.0 response headers) is Prometheus's own
// client_golang remote write handler; decoding and the pipeline call are ours (Store).
func (r *remoteWriteReceiver) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(WritePath, remoteapi.NewWriteHandler(r,
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType},
		remoteapi.WithWriteHandlerLogger(slog.New(slog.DiscardHandler)),
		// confighttp has already decoded the snappy body (see serverOptions): no middleware.
		remoteapi.WithWriteHandlerMiddlewares(),
	))
	return mux
}

// serverOptions make confighttp decode the body the way remote write senders encode it:
// `Content-Encoding: snappy` is the block format (what Prometheus sends) or the framed format; a
// request without Content-Encoding is snappy block-compressed too (as Prometheus assumes); any
// other encoding is refused with 415. The decoded size is checked against max_request_body_size
// before anything is decoded.
//
// Decoding is lazy (see snappyBody): it happens when Store reads the body, after Prometheus's
// handler has answered 405 for a method and 415 for a content type, so that a request with an
// unsupported content type gets 415 whatever its body (the remote write 2.0 spec's answer).
// confighttp's error handler therefore sees only encodings it has no decoder for.
func (r *remoteWriteReceiver) serverOptions() []confighttp.ToServerOption {
	maxSize := r.cfg.MaxRequestBodySize
	if maxSize <= 0 { // as confighttp: 0 means its default
		maxSize = defaultMaxRequestBodySize
	}
	return []confighttp.ToServerOption{
		confighttp.WithDecoder("", snappyDecoder(maxSize, false)),
		confighttp.WithDecoder("snappy", snappyDecoder(maxSize, true)),
		confighttp.WithDecoder("identity", func(io.ReadCloser) (io.ReadCloser, error) {
			return nil, errors.New("unsupported Content-Encoding: identity (remote write bodies are snappy-compressed)")
		}),
		confighttp.WithErrorHandler(unsupportedEncodingHandler),
	}
}

// unsupportedEncodingHandler answers the errors of confighttp's middleware. Its decompressor
// reports 400; the decoders above never fail when called (they decode lazily), so such an error is
// a Content-Encoding without a decoder: 415. Every other status (401 from the `auth:`
// authenticator) passes unchanged.
func unsupportedEncodingHandler(w http.ResponseWriter, _ *http.Request, msg string, statusCode int) {
	if statusCode == http.StatusBadRequest {
		statusCode = http.StatusUnsupportedMediaType
	}
	http.Error(w, msg, statusCode)
}

// snappyFramingHeader starts a body in snappy's framed format.
var snappyFramingHeader = []byte("\xff\x06\x00\x00sNaPpY")

// decodedBuffers hold decoded bodies between requests, so that decoding allocates nothing.
var decodedBuffers = sync.Pool{New: func() any { return new([]byte) }}

// bodyError is why a request body could not be decoded, with the status it is answered with:
// 413 for a decoded size over max_request_body_size, 400 for a corrupt body.
type bodyError struct {
	code int
	err  error
}

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// snappyBody is a snappy-compressed request body that decodes itself on its first Read: the
// block format into a pooled buffer, refused before decoding when its decoded length exceeds
// maxSize (positive); with framed, also the framed format (as confighttp's own snappy decoder does). Errors
// are *bodyError. confighttp closes it once the handler has returned, and the handler reads it
// all before; Close gives the buffer back.
type snappyBody struct {
	src     io.ReadCloser // the compressed body; nil once decoded
	maxSize int64
	framed  bool

	decoded bytes.Reader
	buf     *[]byte // pooled, holds decoded
	err     error
}

func (b *snappyBody) Read(p []byte) (int, error) {
	if b.src != nil {
		b.err = b.decode()
		_ = b.src.Close()
		b.src = nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.decoded.Read(p)
}

func (b *snappyBody) decode() error {
	buf := bodyBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	defer putBodyBuffer(buf) // decoding copies out of it
	if _, err := buf.ReadFrom(b.src); err != nil {
		return err // *http.MaxBytesError for a compressed body over the limit
	}
	compressed := buf.Bytes()
	if len(compressed) == 0 {
		return nil // nothing to decode (an empty request): the handler answers
	}
	tooLarge := &bodyError{code: http.StatusRequestEntityTooLarge,
		err: fmt.Errorf("snappy: decoded size exceeds max request body size (%d bytes)", b.maxSize)}
	dst := decodedBuffers.Get().(*[]byte)
	if b.framed && bytes.HasPrefix(compressed, snappyFramingHeader) {
		out := bytes.NewBuffer((*dst)[:0])
		_, err := out.ReadFrom(io.LimitReader(snappy.NewReader(bytes.NewReader(compressed)), b.maxSize+1))
		*dst = out.Bytes()
		switch {
		case err != nil:
			decodedBuffers.Put(dst)
			return &bodyError{code: http.StatusBadRequest, err: fmt.Errorf("snappy (framed): %w", err)}
		case int64(out.Len()) > b.maxSize:
			decodedBuffers.Put(dst)
			return tooLarge
		}
		b.buf = dst
		b.decoded.Reset(*dst)
		return nil
	}
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		decodedBuffers.Put(dst)
		return &bodyError{code: http.StatusBadRequest, err: fmt.Errorf("snappy: %w", err)}
	}
	if int64(n) > b.maxSize {
		decodedBuffers.Put(dst)
		return tooLarge
	}
	if cap(*dst) < n {
		*dst = make([]byte, n)
	}
	decoded, err := snappy.Decode((*dst)[:cap(*dst)], compressed)
	if err != nil {
		decodedBuffers.Put(dst)
		return &bodyError{code: http.StatusBadRequest, err: fmt.Errorf("snappy: %w", err)}
	}
	b.buf = dst
	b.decoded.Reset(decoded)
	return nil
}

func (b *snappyBody) Close() error {
	if b.src != nil {
		_ = b.src.Close()
		b.src = nil
	}
	if b.buf != nil {
		if cap(*b.buf) <= 64<<20 {
			decodedBuffers.Put(b.buf)
		}
		b.buf = nil
		b.decoded.Reset(nil)
	}
	return nil
}

// snappyDecoder is confighttp's decoder of one Content-Encoding: it never fails itself, the body
// decodes on its first Read (see snappyBody).
func snappyDecoder(maxSize int64, framed bool) func(io.ReadCloser) (io.ReadCloser, error) {
	return func(body io.ReadCloser) (io.ReadCloser, error) {
		return &snappyBody{src: body, maxSize: maxSize, framed: framed}, nil
	}
}

// Start binds the listener, so that a busy port fails start-up, and serves in the background.
func (r *remoteWriteReceiver) Start(ctx context.Context, host component.Host) error {
	ln, err := r.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("remote_write receiver: listen on %q: %w", r.cfg.NetAddr.Endpoint, err)
	}
	srv, err := r.cfg.ToServer(ctx, host.GetExtensions(), r.settings.TelemetrySettings, r.handler(), r.serverOptions()...)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("remote_write receiver: create server: %w", err)
	}
	r.server, r.listener = srv, ln
	r.writer = r.seriesWriter(host)
	r.settings.Logger.Info("Accepting Prometheus remote write", zap.String("endpoint", ln.Addr().String()), zap.String("path", WritePath))
	r.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
	return nil
}

// seriesWriter finds the exporter that takes the receiver's series directly, if the
// configuration allows one (see passthrough.Routes), and says which way the data goes.
func (r *remoteWriteReceiver) seriesWriter(host component.Host) passthrough.SeriesWriter {
	if !r.cfg.DirectWrite {
		return nil
	}
	w, id, why := passthrough.FindSeriesWriter(host, r.settings.ID)
	if w != nil {
		r.settings.Logger.Info("Remote write goes straight to the metricstor exporter of its pipeline, without pipeline data: the pipeline has no processor and no other exporter",
			zap.String("storage", id.String()))
		return w
	}
	if why != "" {
		r.settings.Logger.Info("Remote write goes through its pipeline as pipeline data", zap.String("reason", why))
	}
	return nil
}

// Shutdown stops accepting requests and lets running ones finish until ctx is done. It works
// when Start never ran.
func (r *remoteWriteReceiver) Shutdown(ctx context.Context) error {
	if r.server == nil {
		return nil
	}
	err := r.server.Shutdown(ctx)
	r.wg.Wait()
	return err
}
