package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
	"github.com/metricstor/metricstor/testbed/workload"
)

// TestKillLoop is the durability contract over many crashes: remote write and OTLP (gRPC and
// HTTP) senders push at once, each keeping a ledger of the rounds the binary acknowledged; the
// binary is killed (kill -9) after a random 0.3-2 s of load, started again on the same data
// directory, and so on for 24 cycles (METRICSTOR_KILLLOOP_CYCLES overrides). Each sender resends
// the round it had in flight at a kill. After the last kill, one more start, and every
// acknowledged sample of every sender must be read back through PromQL with its exact value,
// and nothing else: a sample whose request was in flight may be there, with its value.
// METRICSTOR_KILLLOOP_SEED replays the random load times of an earlier run (printed).
func TestKillLoop(t *testing.T) {
	cycles := 24
	if v := os.Getenv("METRICSTOR_KILLLOOP_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("METRICSTOR_KILLLOOP_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("METRICSTOR_KILLLOOP_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("METRICSTOR_KILLLOOP_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("%d cycles, seed %d (METRICSTOR_KILLLOOP_SEED)", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	cfg := harness.NewConfig(t)
	cfg.RemoteWrite = harness.FreePorts(t, 1)[0]
	c := harness.NewCollector(t, "metricstor (kill loop)", harness.Binary(t), cfg)
	w, err := workload.New(workload.Config{
		RemoteWriteURL: cfg.RemoteWriteURL(), OTLPGRPCAddr: cfg.Ports.OTLPGRPCAddr(), OTLPHTTPURL: cfg.Ports.OTLPHTTPURL(),
		RemoteWriteStreams: 2, RemoteWriteSeries: 400,
		OTLPGRPCStreams: 1, OTLPHTTPStreams: 1, OTLPSeries: 50,
		// At most 50 rounds a second per stream (pace below) over at most 24 × 2 s of load.
		Rounds: 5000, Step: time.Second, RequestTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	const pace = 20 * time.Millisecond
	cyclesWithAcks, inFlight := 0, 0
	for cycle := range cycles {
		ready := c.Start()
		before := ackedRounds(w)
		ctx, cancel := context.WithCancel(context.Background())
		wait := w.Start(ctx, pace, 20*time.Millisecond)
		load := time.Duration(300+rng.IntN(1700)) * time.Millisecond
		time.Sleep(load)
		c.Kill()
		cancel()
		for _, err := range wait() {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		after := ackedRounds(w)
		if after > before {
			cyclesWithAcks++
		}
		unsettled := 0
		for _, st := range w.Streams {
			ledger, attempted := st.Ledger()
			unsettled += attempted - len(ledger)
		}
		if unsettled > 0 {
			inFlight++
		}
		t.Logf("cycle %2d: ready in %s, %s of load, %d rounds acknowledged, %d sent but not acknowledged at the kill", cycle, ready.Round(time.Millisecond), load, after-before, unsettled)
	}
	for _, st := range w.Streams {
		if st.AckedRounds() == 0 {
			t.Fatalf("stream %s had no round acknowledged in %d cycles: no load to speak of", st.Name, cycles)
		}
	}
	if cyclesWithAcks < cycles/2 {
		t.Fatalf("only %d of %d cycles had rounds acknowledged: no load to speak of", cyclesWithAcks, cycles)
	}
	for _, kind := range workload.Kinds {
		counts := w.Counts[kind]
		if n := counts.Attempts(workload.Rejected); n > 0 {
			t.Errorf("%s: %d requests refused permanently", kind, n)
		}
		t.Logf("%s: %d samples acknowledged; attempts: %d acked, %d refused, %d timed out, %d without a server, %d cancelled at the end of a cycle", kind,
			counts.Samples(), counts.Attempts(workload.Acked), counts.Attempts(workload.Refused), counts.Attempts(workload.Timeout),
			counts.Attempts(workload.Down), counts.Attempts(workload.Cancelled))
	}

	c.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := w.Verify(ctx, newAPI(t, cfg.Ports))
	if err != nil {
		t.Fatal(apiError(err))
	}
	t.Logf("%d cycles (%d with acknowledged load, %d killed with a request in flight): %d acknowledged samples, %d read back, %d of unacknowledged requests read back too",
		cycles, cyclesWithAcks, inFlight, rep.Acked(), rep.Acked()-rep.Lost(), rep.Unacked())
	if rep.Lost() != 0 || rep.Wrong() != 0 {
		t.Fatalf("after %d kill -9 cycles: %d acknowledged samples lost, %d wrong samples read back:\n%s", cycles, rep.Lost(), rep.Wrong(), rep.Problems())
	}
}

func ackedRounds(w *workload.Workload) int {
	n := 0
	for _, st := range w.Streams {
		n += st.AckedRounds()
	}
	return n
}
