package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// TestPush checks the wire format the example sends: snappy block, 1.0 content type, the
// series and metadata it built; and that an error status is reported.
func TestPush(t *testing.T) {
	var got prompb.WriteRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Content-Encoding") != "snappy" {
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

	req := buildRequest(time.UnixMilli(1_700_000_000_000), 3)
	if err := push(context.Background(), srv.URL, req); err != nil {
		t.Fatal(err)
	}
	if len(got.Timeseries) != 3 || len(got.Metadata) != 2 || len(got.Timeseries[0].Samples) != 3 {
		t.Fatalf("got %d series, %d metadata", len(got.Timeseries), len(got.Metadata))
	}
	if ts := got.Timeseries[0].Samples[2].Timestamp; ts != 1_700_000_000_000 {
		t.Errorf("last sample at %d, want now", ts)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "nope", http.StatusBadRequest)
	}))
	defer bad.Close()
	if err := push(context.Background(), bad.URL, req); err == nil {
		t.Error("a 400 answer was not reported")
	}
}
