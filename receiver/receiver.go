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
	"strings"
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
func (r *remoteWriteReceiver) serverOptions() []confighttp.ToServerOption {
	return []confighttp.ToServerOption{
		confighttp.WithDecoder("", snappyBlockDecoder(r.cfg.MaxRequestBodySize)),
		confighttp.WithDecoder("snappy", snappyDecoder(r.cfg.MaxRequestBodySize, true)),
		confighttp.WithDecoder("identity", func(io.ReadCloser) (io.ReadCloser, error) {
			return nil, errors.New("unsupported Content-Encoding: identity (remote write bodies are snappy-compressed)")
		}),
		confighttp.WithErrorHandler(decodeErrorHandler),
	}
}

// snappyFramingHeader starts a body in snappy's framed format.
var snappyFramingHeader = []byte("\xff\x06\x00\x00sNaPpY")

// decodedBuffers hold decoded bodies between requests, so that decoding allocates nothing.
var decodedBuffers = sync.Pool{New: func() any { return new([]byte) }}

// decodedBody reads a decoded body out of a pooled buffer and gives the buffer back on Close.
// confighttp closes it once the handler has returned, and the handler reads it all before.
type decodedBody struct {
	bytes.Reader
	buf *[]byte
}

func (b *decodedBody) Close() error {
	if b.buf != nil {
		if cap(*b.buf) <= 64<<20 {
			decodedBuffers.Put(b.buf)
		}
		b.buf = nil
		b.Reset(nil)
	}
	return nil
}

// snappyBlockDecoder decodes a snappy block-format body, refusing one whose decoded length
// exceeds maxSize before allocating it.
func snappyBlockDecoder(maxSize int64) func(io.ReadCloser) (io.ReadCloser, error) {
	return snappyDecoder(maxSize, false)
}

// snappyDecoder decodes a snappy body: the block format into a pooled buffer, refused before
// decoding when its decoded length exceeds maxSize; with framed, also the framed format (as
// confighttp's own snappy decoder does; its output is limited by confighttp's MaxBytesReader).
func snappyDecoder(maxSize int64, framed bool) func(io.ReadCloser) (io.ReadCloser, error) {
	return func(body io.ReadCloser) (io.ReadCloser, error) {
		defer body.Close()
		buf := bodyBuffers.Get().(*bytes.Buffer)
		buf.Reset()
		defer putBodyBuffer(buf) // decoding copies out of it
		if _, err := buf.ReadFrom(body); err != nil {
			return nil, err
		}
		compressed := buf.Bytes()
		if len(compressed) == 0 {
			// Nothing to decode (a GET, or an empty request): the handler answers.
			return io.NopCloser(strings.NewReader("")), nil
		}
		if framed && bytes.HasPrefix(compressed, snappyFramingHeader) {
			return io.NopCloser(snappy.NewReader(bytes.NewReader(bytes.Clone(compressed)))), nil
		}
		n, err := snappy.DecodedLen(compressed)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		if maxSize > 0 && int64(n) > maxSize {
			return nil, errors.New("snappy: decoded size exceeds max request body size")
		}
		dst := decodedBuffers.Get().(*[]byte)
		if cap(*dst) < n {
			*dst = make([]byte, n)
		}
		decoded, err := snappy.Decode((*dst)[:cap(*dst)], compressed)
		if err != nil {
			decodedBuffers.Put(dst)
			return nil, fmt.Errorf("snappy: %w", err)
		}
		out := &decodedBody{buf: dst}
		out.Reset(decoded)
		return out, nil
	}
}

// decodeErrorHandler maps confighttp's decompression errors onto remote write status codes:
// an encoding other than snappy is 415, a body over max_request_body_size 413, anything else
// (corrupt snappy) 400.
func decodeErrorHandler(w http.ResponseWriter, _ *http.Request, msg string, code int) {
	switch {
	case strings.HasPrefix(msg, "unsupported Content-Encoding"):
		code = http.StatusUnsupportedMediaType
	case strings.Contains(msg, "request body too large"), strings.Contains(msg, "exceeds max request body size"):
		code = http.StatusRequestEntityTooLarge
	}
	http.Error(w, msg, code)
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
	r.settings.Logger.Info("Accepting Prometheus remote write", zap.String("endpoint", ln.Addr().String()), zap.String("path", WritePath))
	r.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	})
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
