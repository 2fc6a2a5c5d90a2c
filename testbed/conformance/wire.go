package conformance

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The protobuf messages of remote write, as Prometheus's `protobuf_message` setting and the
// `proto=` parameter of the Content-Type name them.
const (
	MessageV1 = "prometheus.WriteRequest"        // remote write 1.0
	MessageV2 = "io.prometheus.write.v2.Request" // remote write 2.0
)

// writtenHeader is the header every 2.0 answer carries (and no 1.0 answer).
const writtenHeader = "X-Prometheus-Remote-Write-Samples-Written"

// ProtocolName returns "1.0" for MessageV1 (or ""), "2.0" for MessageV2.
func ProtocolName(message string) string {
	if message == MessageV2 {
		return "2.0"
	}
	return "1.0"
}

// WireRecorder is a reverse proxy between the reference's remote write and a system under test
// that records what went over the wire: the message of every request (from its Content-Type)
// and whether the system answered it as 2.0 (with the X-Prometheus-Remote-Write-*-Written
// headers). Check then shows that a system received the protocol it was meant to, so that a
// comparison cannot pass over the other one by accident.
type WireRecorder struct {
	// URL is the remote write URL to give the sender.
	URL string

	mu        sync.Mutex
	messages  map[string]int // requests answered 2xx, by the message their Content-Type names
	accepted  int            // requests answered 2xx
	refused   int            // other answers, and requests the proxy could not forward
	written   int            // 2xx answers that carry writtenHeader
	samples   int64          // sum of writtenHeader over them
	badHeader string         // the first writtenHeader value that is not a number
}

// NewWireRecorder serves the proxy on a free loopback port, forwarding to target (a remote write
// URL), until the end of the test. While target is down (a restart), the proxy answers 502,
// which the sender retries like a refused connection.
func NewWireRecorder(t testing.TB, target string) *WireRecorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("remote write URL %q: %v", target, err)
	}
	w := &WireRecorder{messages: map[string]int{}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.URL.Path = u.Scheme, u.Host, u.Path
			r.Out.Host = u.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			w.record(resp)
			return nil
		},
		ErrorHandler: func(rw http.ResponseWriter, _ *http.Request, err error) {
			w.mu.Lock()
			w.refused++
			w.mu.Unlock()
			http.Error(rw, err.Error(), http.StatusBadGateway)
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for the remote write proxy: %v", err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	w.URL = "http://" + l.Addr().String() + u.Path
	return w
}

func (w *WireRecorder) record(resp *http.Response) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if resp.StatusCode/100 != 2 {
		w.refused++
		return
	}
	w.accepted++
	w.messages[requestMessage(resp.Request.Header.Get("Content-Type"))]++
	if v := resp.Header.Get(writtenHeader); v != "" {
		w.written++
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil && w.badHeader == "" {
			w.badHeader = v
		}
		w.samples += n
	}
}

// requestMessage returns the message a remote write Content-Type names: its proto= parameter,
// MessageV1 when there is none or no header at all (the 1.0 default), or the raw header when it
// does not parse.
func requestMessage(contentType string) string {
	if contentType == "" {
		return MessageV1
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-protobuf" {
		return "Content-Type " + strconv.Quote(contentType)
	}
	if p := params["proto"]; p != "" {
		return p
	}
	return MessageV1
}

// Check reports whether every request the system accepted was of message, and answered as that
// protocol: for 2.0 every answer carries the written headers and they add up to more than zero
// samples, for 1.0 none does. It fails when no request was accepted.
func (w *WireRecorder) Check(message string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if w.accepted == 0 {
		errs = append(errs, errors.New("no remote write request was accepted"))
	}
	for m, n := range w.messages {
		if m != message {
			errs = append(errs, fmt.Errorf("%d requests of %s, want only %s", n, m, message))
		}
	}
	if message == MessageV2 {
		if w.written != w.accepted {
			errs = append(errs, fmt.Errorf("%d of %d accepted requests answered without %s", w.accepted-w.written, w.accepted, writtenHeader))
		}
		if w.badHeader != "" {
			errs = append(errs, fmt.Errorf("%s: %q is not a number", writtenHeader, w.badHeader))
		}
		if w.samples <= 0 {
			errs = append(errs, fmt.Errorf("the 2.0 answers report %d samples written", w.samples))
		}
	} else if w.written > 0 {
		errs = append(errs, fmt.Errorf("%d answers to 1.0 requests carry %s, which only 2.0 answers do", w.written, writtenHeader))
	}
	return errors.Join(errs...)
}

// Summary describes the traffic so far, e.g. "412 requests accepted
// (io.prometheus.write.v2.Request: 412), 3 refused; 412 answers report 98765 samples written".
func (w *WireRecorder) Summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := make([]string, 0, len(w.messages))
	for m, n := range w.messages {
		ms = append(ms, fmt.Sprintf("%s: %d", m, n))
	}
	sort.Strings(ms)
	s := fmt.Sprintf("%d requests accepted (%s), %d refused or not forwarded", w.accepted, strings.Join(ms, ", "), w.refused)
	if w.written > 0 {
		s += fmt.Sprintf("; %d answers report %d samples written", w.written, w.samples)
	} else {
		s += "; no answer carries " + writtenHeader
	}
	return s
}
