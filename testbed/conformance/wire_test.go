package conformance

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeReceiver answers like a remote write receiver: 204, with the written headers on 2.0
// requests only (what Metricstor's receiver and Prometheus's do), or, with lie, on every request.
func fakeReceiver(lie bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if lie || requestMessage(r.Header.Get("Content-Type")) == MessageV2 {
			w.Header().Set(writtenHeader, "7")
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func send(t *testing.T, url, contentType string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

const (
	ctV1 = "application/x-protobuf"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

func TestWireRecorder(t *testing.T) {
	for _, tc := range []struct {
		name, message string
		lie           bool
		sent          []string // content types
		wantErr       string   // "" when Check passes
	}{
		{name: "1.0", message: MessageV1, sent: []string{ctV1, "", "application/x-protobuf;proto=prometheus.WriteRequest"}},
		{name: "2.0", message: MessageV2, sent: []string{ctV2, ctV2}},
		{name: "nothing", message: MessageV2, wantErr: "no remote write request"},
		{name: "1.0 where 2.0 is wanted", message: MessageV2, sent: []string{ctV2, ctV1}, wantErr: "1 requests of prometheus.WriteRequest"},
		{name: "2.0 where 1.0 is wanted", message: MessageV1, sent: []string{ctV2}, wantErr: "1 requests of io.prometheus.write.v2.Request"},
		{name: "1.0 answered as 2.0", message: MessageV1, lie: true, sent: []string{ctV1}, wantErr: "only 2.0 answers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := httptest.NewServer(fakeReceiver(tc.lie))
			defer backend.Close()
			w := NewWireRecorder(t, backend.URL+"/api/v1/write")
			if !strings.HasSuffix(w.URL, "/api/v1/write") {
				t.Errorf("proxy URL %s", w.URL)
			}
			for _, ct := range tc.sent {
				send(t, w.URL, ct)
			}
			err := w.Check(tc.message)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Check: %v (%s)", err, w.Summary())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Check: got %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestWireRecorderTargetDown(t *testing.T) {
	backend := httptest.NewServer(fakeReceiver(false))
	w := NewWireRecorder(t, backend.URL+"/api/v1/write")
	backend.Close()
	resp, err := http.Post(w.URL, ctV2, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("target down: got %s, want 502 (which senders retry)", resp.Status)
	}
	if !strings.Contains(w.Summary(), "1 refused") {
		t.Errorf("summary: %s", w.Summary())
	}
}
