package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

func TestSeries(t *testing.T) {
	seen := map[string]bool{}
	for id := 0; id < 3*SeriesPerHost; id++ {
		ls := Labels(id)
		var key strings.Builder
		for i, l := range ls {
			if i > 0 && ls[i-1].Name >= l.Name {
				t.Fatalf("series %d: labels not sorted: %v", id, ls)
			}
			key.WriteString(l.Name + "=" + l.Value + ",")
		}
		if n := len(ls) - 3; n < 1 || n > 2 {
			t.Fatalf("series %d: %d extra labels, want 1-2", id, n)
		}
		if seen[key.String()] {
			t.Fatalf("series %d: duplicate label set %s", id, key.String())
		}
		seen[key.String()] = true
		if tpl := hostTemplates[id%SeriesPerHost]; tpl.counter {
			for r := 1; r < 200; r++ {
				if Value(id, r) < Value(id, r-1) {
					t.Fatalf("counter %d decreases at round %d", id, r)
				}
			}
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:9201/api/v1/write", "http://localhost:1/", "http://[::1]:80/"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:9201/", "http://example.com/", "https://127.0.0.1/", "http://0.0.0.0:1/"} {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// TestRun sends 250 series × 5 samples to a server that answers 503 to every third request and
// checks that every sample arrives exactly once, in order per series; then that a 400 fails the run.
func TestRun(t *testing.T) {
	var (
		mu    sync.Mutex
		last  = map[string]int64{}
		count int
		calls atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%3 == 0 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req prompb.WriteRequest
		if err == nil {
			err = req.Unmarshal(raw)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ts := range req.Timeseries {
			var key string
			for _, l := range ts.Labels {
				key += l.Name + "=" + l.Value + ","
			}
			if prev, ok := last[key]; ok && ts.Samples[0].Timestamp <= prev {
				http.Error(w, "out of order", http.StatusBadRequest)
				return
			}
			last[key] = ts.Samples[0].Timestamp
			count++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	g, err := New(Config{URL: srv.URL, Series: 250, Samples: 5, Senders: 3, BatchSize: 40, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.SendMetadata(context.Background()); err != nil {
		t.Fatal(err)
	}
	s0, err := g.Run(context.Background(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	s1, err := g.Run(context.Background(), 1, 5)
	if err != nil {
		t.Fatal(err)
	}
	if s0.Samples != 250 || s1.Samples != 1000 || count != 1250 || len(last) != 250 {
		t.Fatalf("samples %d + %d, server counted %d in %d series", s0.Samples, s1.Samples, count, len(last))
	}
	if s0.Retries+s1.Retries == 0 {
		t.Fatalf("no retries counted")
	}
	if all := s0.Add(s1); int64(len(all.Latencies)) != all.Requests || all.Samples != 1250 || all.Latency(0.99) <= 0 {
		t.Fatalf("%d latencies for %d requests, p99 %s", len(all.Latencies), all.Requests, all.Latency(0.99))
	}
	// Everything again: the server now refuses (out of order) with 400, which must fail the run.
	if _, err := g.Run(context.Background(), 0, 1); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("run against a 400: err = %v", err)
	}
}

func TestLatency(t *testing.T) {
	var s Stats
	if s.Latency(0.5) != 0 {
		t.Fatal("latency of no requests")
	}
	for i := 100; i >= 1; i-- {
		s.Latencies = append(s.Latencies, time.Duration(i)*time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0: time.Millisecond, 0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := s.Latency(q); got != want {
			t.Errorf("q%v = %s, want %s", q, got, want)
		}
	}
}

// TestRunSender sends one sender's shard alone and checks that only its series arrive, and that
// OnAttempt sees every attempt with its status: the 503s and the 2xx.
func TestRunSender(t *testing.T) {
	var (
		mu       sync.Mutex
		got      = map[string]int{}
		calls    atomic.Int64
		statuses = map[int]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1)%2 == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		raw, _ := snappy.Decode(nil, body)
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ts := range req.Timeseries {
			for _, l := range ts.Labels {
				if l.Name == "instance" {
					got[l.Value] += len(ts.Samples)
				}
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	g, err := New(Config{URL: srv.URL, Series: 4 * SeriesPerHost, Samples: 3, Senders: 4, BatchSize: SeriesPerHost,
		OnAttempt: func(status int, err error) {
			mu.Lock()
			defer mu.Unlock()
			if (status/100 == 2) != (err == nil) {
				t.Errorf("attempt with status %d and error %v", status, err)
			}
			statuses[status]++
		}})
	if err != nil {
		t.Fatal(err)
	}
	if lo, hi := g.Shard(2); lo != 2*SeriesPerHost || hi != 3*SeriesPerHost {
		t.Fatalf("shard 2 = [%d, %d)", lo, hi)
	}
	st, err := g.RunSender(context.Background(), 2, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if st.Samples != 3*SeriesPerHost || st.Requests != 3 || st.Retries != 3 {
		t.Fatalf("stats: %d samples in %d requests, %d retries", st.Samples, st.Requests, st.Retries)
	}
	if len(got) != 1 || got["host-00002:9100"] != 3*SeriesPerHost {
		t.Fatalf("server received %v, want only host-00002 with %d samples", got, 3*SeriesPerHost)
	}
	if statuses[http.StatusServiceUnavailable] != 3 || statuses[http.StatusNoContent] != 3 {
		t.Fatalf("attempts seen by OnAttempt: %v", statuses)
	}
	if _, err := g.RunSender(context.Background(), 4, 0, 1); err == nil {
		t.Fatal("sender 4 of 4 accepted")
	}
}

// TestRunV2 sends the same load as 1.0 and as 2.0 to a server that decodes each and checks
// the 2.0 headers: the same samples under the same label sets arrive, and every 2.0 series
// carries its metric's type and help (1.0 sends them in a request of their own).
func TestRunV2(t *testing.T) {
	received := func(v2 bool) (map[string][]prompb.Sample, map[string]string) {
		t.Helper()
		var mu sync.Mutex
		got := map[string][]prompb.Sample{}
		meta := map[string]string{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			raw, err := snappy.Decode(nil, body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ct, version := r.Header.Get("Content-Type"), r.Header.Get("X-Prometheus-Remote-Write-Version")
			if !v2 {
				var req prompb.WriteRequest
				if err := req.Unmarshal(raw); err != nil || ct != "application/x-protobuf" || version != "0.1.0" {
					http.Error(w, fmt.Sprintf("1.0: %v, %q, %q", err, ct, version), http.StatusBadRequest)
					return
				}
				for _, m := range req.Metadata {
					meta[m.MetricFamilyName] = m.Type.String() + " " + m.Help
				}
				for _, ts := range req.Timeseries {
					key := fmt.Sprint(ts.Labels)
					got[key] = append(got[key], ts.Samples...)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			var req writev2.Request
			if err := req.Unmarshal(raw); err != nil || ct != "application/x-protobuf;proto=io.prometheus.write.v2.Request" || version != "2.0.0" {
				http.Error(w, fmt.Sprintf("2.0: %v, %q, %q", err, ct, version), http.StatusBadRequest)
				return
			}
			var b labels.ScratchBuilder
			for _, ts := range req.Timeseries {
				ls, err := ts.ToLabels(&b, req.Symbols)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				var pls []prompb.Label
				ls.Range(func(l labels.Label) { pls = append(pls, prompb.Label{Name: l.Name, Value: l.Value}) })
				key := fmt.Sprint(pls)
				for _, s := range ts.Samples {
					got[key] = append(got[key], prompb.Sample{Value: s.Value, Timestamp: s.Timestamp})
				}
				m, err := ts.ToMetadata(req.Symbols)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				typ := map[model.MetricType]string{model.MetricTypeCounter: "COUNTER", model.MetricTypeGauge: "GAUGE"}[m.Type]
				meta[ls.Get(model.MetricNameLabel)] = typ + " " + m.Help
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		g, err := New(Config{URL: srv.URL, Series: 250, Samples: 3, Senders: 2, BatchSize: 70, Timeout: time.Minute,
			End: time.UnixMilli(1_800_000_000_000), V2: v2})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SendMetadata(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Run(context.Background(), 0, 3); err != nil {
			t.Fatal(err)
		}
		return got, meta
	}
	v1, meta1 := received(false)
	v2, meta2 := received(true)
	if len(v1) != 250 || len(meta1) == 0 {
		t.Fatalf("1.0: %d series, %d metadata", len(v1), len(meta1))
	}
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("2.0 sent other series or samples than 1.0: %d against %d series", len(v2), len(v1))
	}
	if !reflect.DeepEqual(meta1, meta2) {
		t.Fatalf("2.0 metadata %v, 1.0 %v", meta2, meta1)
	}
}
