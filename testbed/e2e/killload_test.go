package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestKillUnderLoad is the durability contract under concurrent load: senders push remote write
// rounds as fast as the binary acknowledges them, the process is killed (kill -9) in the middle,
// and after a restart every acknowledged sample is there with its exact value. A round whose
// request was in flight at the kill may or may not be stored, and nothing later may be.
// With sync_commits, every commit is also fsynced; the same must hold.
func TestKillUnderLoad(t *testing.T) {
	t.Run("default", func(t *testing.T) { testKillUnderLoad(t, false) })
	t.Run("sync_commits", func(t *testing.T) { testKillUnderLoad(t, true) })
}

func testKillUnderLoad(t *testing.T, syncCommits bool) {
	const (
		senders         = 4
		seriesPerSender = 250
		loadFor         = 1500 * time.Millisecond
	)
	binary := harness.Binary(t)
	configPath, ports, url := defaultConfigOnFreePorts(t)
	if syncCommits {
		text, err := os.ReadFile(configPath)
		if err != nil {
			t.Fatal(err)
		}
		const anchor = "    directory: "
		if !strings.Contains(string(text), anchor) {
			t.Fatalf("config has no %q line to add sync_commits beside", anchor)
		}
		text = []byte(strings.Replace(string(text), anchor, "    sync_commits: true\n"+anchor, 1))
		if err := os.WriteFile(configPath, text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc := harness.StartReady(t, "metricstor (under load)", binary, configPath, ports)
	waitListening(t, proc, url)

	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	value := func(sender, series, round int) float64 {
		return float64(sender*1_000_000+series*1000+round) + 0.25
	}
	// acked[s] is the number of rounds of sender s that were answered 204, in order.
	acked := make([]int, senders)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 100_000; round++ {
				select {
				case <-stop:
					return
				default:
				}
				var req prompb.WriteRequest
				for i := range seriesPerSender {
					req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
						Labels: []prompb.Label{
							{Name: "__name__", Value: "killload_value"},
							{Name: "sender", Value: fmt.Sprint(s)},
							{Name: "series", Value: fmt.Sprint(i)},
						},
						Samples: []prompb.Sample{{Timestamp: base + int64(round)*1000, Value: value(s, i, round)}},
					})
				}
				msg, err := req.Marshal()
				if err != nil {
					t.Error(err)
					return
				}
				hreq, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, msg)))
				if err != nil {
					t.Error(err)
					return
				}
				hreq.Header.Set("Content-Type", "application/x-protobuf")
				hreq.Header.Set("Content-Encoding", "snappy")
				resp, err := client.Do(hreq)
				if err != nil {
					return // the process is gone
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("sender %d round %d: %s", s, round, resp.Status)
					return
				}
				acked[s] = round + 1
			}
		}()
	}
	time.Sleep(loadFor)
	proc.Kill()
	close(stop)
	wg.Wait()
	total := 0
	for s, n := range acked {
		if n < 2 {
			t.Fatalf("sender %d had only %d rounds acknowledged before the kill: no load to speak of", s, n)
		}
		total += n
	}
	t.Logf("killed after %d acknowledged rounds of %d series (%d samples)", total, seriesPerSender, total*seriesPerSender)

	harness.StartReady(t, "metricstor (after kill -9 under load)", binary, configPath, ports)
	api := newAPI(t, ports)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	end := time.UnixMilli(base + 100_000*1000)
	res, _, _, err := api.Query(ctx, `killload_value[200000s]`, end)
	if err != nil {
		t.Fatal(apiError(err))
	}
	got := map[string][]model.SamplePair{}
	for _, ss := range res.(model.Matrix) {
		got[string(ss.Metric["sender"])+"/"+string(ss.Metric["series"])] = ss.Values
	}
	for s, n := range acked {
		for i := range seriesPerSender {
			vals := got[fmt.Sprintf("%d/%d", s, i)]
			if len(vals) < n || len(vals) > n+1 {
				t.Fatalf("sender %d series %d: %d samples after the restart, %d acknowledged (one more may have been in flight)", s, i, len(vals), n)
			}
			for round, p := range vals {
				if int64(p.Timestamp) != base+int64(round)*1000 || float64(p.Value) != value(s, i, round) {
					t.Fatalf("sender %d series %d round %d: got %v @%d, want %v @%d", s, i, round, p.Value, p.Timestamp, value(s, i, round), base+int64(round)*1000)
				}
			}
		}
	}
}
