package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
)

// quick retries for the tests; the command waits longer.
var testBackoff = remoteapi.BackoffConfig{Min: time.Millisecond, Max: 10 * time.Millisecond, MaxRetries: 3}

// TestPush checks the wire format the example sends: to the URL as given, snappy block, 1.0
// content type and version, the series and metadata it built; that a 5xx answer is retried; and
// that a 4xx answer is reported at once.
func TestPush(t *testing.T) {
	var got prompb.WriteRequest
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/api/v1/write" {
			http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
			return
		}
		if r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Content-Encoding") != "snappy" ||
			r.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
			http.Error(w, "bad headers", http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, b)
		if err == nil {
			err = got.Unmarshal(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	client, err := newClient(srv.URL+"/api/v1/write", testBackoff)
	if err != nil {
		t.Fatal(err)
	}
	req := buildRequest(time.UnixMilli(1_700_000_000_000), 3)
	if err := push(context.Background(), client, req); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d requests, want 2 (a 503, then the retry)", n)
	}
	if len(got.Timeseries) != 3 || len(got.Metadata) != 2 || len(got.Timeseries[0].Samples) != 3 {
		t.Fatalf("got %d series, %d metadata", len(got.Timeseries), len(got.Metadata))
	}
	if ts := got.Timeseries[0].Samples[2].Timestamp; ts != 1_700_000_000_000 {
		t.Errorf("last sample at %d, want now", ts)
	}

	var badCalls atomic.Int32
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		badCalls.Add(1)
		http.Error(w, "nope", http.StatusBadRequest)
	}))
	defer bad.Close()
	client, err = newClient(bad.URL, testBackoff)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(context.Background(), client, req); err == nil {
		t.Error("a 400 answer was not reported")
	}
	if n := badCalls.Load(); n != 1 {
		t.Errorf("a 400 answer was sent %d times, want once (not retried)", n)
	}
}
