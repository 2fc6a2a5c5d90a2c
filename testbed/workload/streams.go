package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/testbed/loadgen"
)

// Kinds of streams, the keys of Workload.Counts.
const (
	KindRemoteWrite = "remote write"
	KindOTLPGRPC    = "otlp grpc"
	KindOTLPHTTP    = "otlp http"
)

// Kinds lists the kinds in the order of reports.
var Kinds = []string{KindRemoteWrite, KindOTLPGRPC, KindOTLPHTTP}

// Config describes the streams of a workload.
type Config struct {
	RemoteWriteURL string // http://127.0.0.1:<port>/api/v1/write
	OTLPGRPCAddr   string // 127.0.0.1:<port>
	OTLPHTTPURL    string // http://127.0.0.1:<port>

	// RemoteWriteStreams senders share RemoteWriteSeries loadgen series (job="loadgen"), each
	// a whole number of loadgen hosts (100 series each), so that a host's series belong to one
	// stream.
	RemoteWriteStreams, RemoteWriteSeries int
	// OTLPGRPCStreams and OTLPHTTPStreams senders each send OTLPSeries series of a gauge and of
	// a cumulative counter (job="workload", instance = the stream's name).
	OTLPGRPCStreams, OTLPHTTPStreams, OTLPSeries int

	// Rounds is the number of rounds of each stream (at most loadgen.MaxSamples), Step their
	// distance in sample time; round Rounds-1 is at End (default: now).
	Rounds int
	Step   time.Duration
	End    time.Time
	// RequestTimeout bounds each attempt of a request.
	RequestTimeout time.Duration
}

// OTLPJob is the job label (service.name) of the OTLP streams.
const OTLPJob = "workload"

// The metrics of the OTLP streams, as the exporter names them.
const (
	OTLPGauge   = "workload_value"       // gauge workload.value
	OTLPCounter = "workload_count_total" // monotonic cumulative sum workload.count
)

// Workload is a set of streams and the counts of their attempts by kind.
type Workload struct {
	Config  Config
	Streams []*Stream
	Counts  map[string]*Counts

	conns []*grpc.ClientConn
}

// New prepares the streams of cfg; Close releases their connections.
func New(cfg Config) (*Workload, error) {
	if cfg.End.IsZero() {
		cfg.End = time.Now()
	}
	if cfg.Rounds < 1 || cfg.Rounds > loadgen.MaxSamples {
		return nil, fmt.Errorf("rounds: %d not in [1, %d]", cfg.Rounds, loadgen.MaxSamples)
	}
	if cfg.Step <= 0 || cfg.RequestTimeout <= 0 {
		return nil, fmt.Errorf("step and request timeout must be positive")
	}
	w := &Workload{Config: cfg, Counts: map[string]*Counts{}}
	for _, k := range Kinds {
		w.Counts[k] = &Counts{}
	}
	endMs := cfg.End.UnixMilli()
	timestamp := func(r int) int64 { return endMs - int64(cfg.Rounds-1-r)*cfg.Step.Milliseconds() }
	if cfg.RemoteWriteStreams > 0 {
		if err := w.addRemoteWrite(cfg); err != nil {
			return nil, err
		}
	}
	for i := range cfg.OTLPGRPCStreams {
		conn, err := grpc.NewClient(cfg.OTLPGRPCAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			// Reconnect quickly after a restart: the default backoff grows to 2 minutes.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second},
				MinConnectTimeout: time.Second,
			}))
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("OTLP gRPC client of %s: %w", cfg.OTLPGRPCAddr, err)
		}
		w.conns = append(w.conns, conn)
		client := pmetricotlp.NewGRPCClient(conn)
		counts := w.Counts[KindOTLPGRPC]
		st := newOTLPStream(fmt.Sprintf("otlp-grpc-%d", i), KindOTLPGRPC, cfg, timestamp)
		st.send = func(ctx context.Context, r int) error {
			md := otlpMetrics(st.Name, cfg.OTLPSeries, r, timestamp(r), timestamp(0)-cfg.Step.Milliseconds())
			actx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
			defer cancel()
			resp, err := client.Export(actx, pmetricotlp.NewExportRequestFromMetrics(md))
			o, err := classifyGRPC(ctx, resp, err)
			counts.add(o)
			if o == Acked {
				counts.samples.Add(int64(md.DataPointCount()))
			}
			return err
		}
		w.Streams = append(w.Streams, st)
	}
	httpClient := &http.Client{Timeout: cfg.RequestTimeout}
	for i := range cfg.OTLPHTTPStreams {
		counts := w.Counts[KindOTLPHTTP]
		st := newOTLPStream(fmt.Sprintf("otlp-http-%d", i), KindOTLPHTTP, cfg, timestamp)
		url := strings.TrimSuffix(cfg.OTLPHTTPURL, "/") + "/v1/metrics"
		st.send = func(ctx context.Context, r int) error {
			md := otlpMetrics(st.Name, cfg.OTLPSeries, r, timestamp(r), timestamp(0)-cfg.Step.Milliseconds())
			o, err := postOTLP(ctx, httpClient, url, md)
			counts.add(o)
			if o == Acked {
				counts.samples.Add(int64(md.DataPointCount()))
			}
			return err
		}
		w.Streams = append(w.Streams, st)
	}
	return w, nil
}

// Close closes the gRPC connections.
func (w *Workload) Close() {
	for _, c := range w.conns {
		_ = c.Close()
	}
}

// Start runs every stream in its own goroutine (see Stream.Run) until ctx is done; wait waits for
// them and returns what they returned (ErrRoundsExhausted when a stream ran out of rounds).
func (w *Workload) Start(ctx context.Context, pace, retryEvery time.Duration) (wait func() []error) {
	errs := make(chan error, len(w.Streams))
	for _, st := range w.Streams {
		go func() { errs <- st.Run(ctx, pace, retryEvery) }()
	}
	return func() []error {
		var out []error
		for range w.Streams {
			if err := <-errs; err != nil {
				out = append(out, err)
			}
		}
		return out
	}
}

// addRemoteWrite adds the remote write streams: one loadgen generator whose senders are the
// streams, one request per round (the batch is a whole shard).
func (w *Workload) addRemoteWrite(cfg Config) error {
	n := cfg.RemoteWriteStreams
	if cfg.RemoteWriteSeries%(n*loadgen.SeriesPerHost) != 0 {
		return fmt.Errorf("remote write series: %d is not a multiple of %d streams × %d series per host", cfg.RemoteWriteSeries, n, loadgen.SeriesPerHost)
	}
	counts := w.Counts[KindRemoteWrite]
	gen, err := loadgen.New(loadgen.Config{
		URL: cfg.RemoteWriteURL, Series: cfg.RemoteWriteSeries, Samples: cfg.Rounds, Senders: n,
		BatchSize: cfg.RemoteWriteSeries / n, Interval: cfg.Step, End: cfg.End,
		Timeout: loadgen.MaxTimeout, RequestTimeout: cfg.RequestTimeout,
		OnAttempt: func(code int, err error) {
			switch {
			case code/100 == 2:
				counts.add(Acked)
			case code == 0:
				counts.add(classifyTransport(err))
			case code/100 == 5 || code == http.StatusTooManyRequests:
				counts.add(Refused)
			default:
				counts.add(Rejected)
			}
		},
	})
	if err != nil {
		return err
	}
	for s := range n {
		lo, hi := gen.Shard(s)
		st := &Stream{Name: fmt.Sprintf("remote-write-%d", s), Kind: KindRemoteWrite, Series: hi - lo, Rounds: cfg.Rounds}
		ids := map[string]int{}
		for id := lo; id < hi; id++ {
			key := strconv.Itoa(id)
			st.keys = append(st.keys, key)
			m := model.Metric{}
			for _, l := range loadgen.Labels(id) {
				m[model.LabelName(l.Name)] = model.LabelValue(l.Value)
			}
			ids[m.String()] = id
		}
		for host := lo / loadgen.SeriesPerHost; host < hi/loadgen.SeriesPerHost; host++ {
			st.queries = append(st.queries, fmt.Sprintf(`{job=%q,instance="host-%05d:9100"}`, loadgen.Job, host))
		}
		st.keyOf = func(m model.Metric) string {
			if id, ok := ids[m.String()]; ok {
				return strconv.Itoa(id)
			}
			return ""
		}
		st.value = func(key string, r int) float64 {
			id, _ := strconv.Atoi(key)
			return loadgen.Value(id, r)
		}
		st.send = func(ctx context.Context, r int) error {
			_, err := gen.RunSender(ctx, s, r, r+1)
			if err == nil {
				counts.samples.Add(int64(hi - lo))
				return nil
			}
			// loadgen retries 5xx, 429 and transport errors itself and fails at once on any
			// other answer: that is permanent.
			if errors.Is(err, loadgen.ErrNotRetryable) {
				return permanentError{err}
			}
			return err
		}
		w.Streams = append(w.Streams, st)
	}
	return nil
}

func newOTLPStream(name, kind string, cfg Config, timestamp func(int) int64) *Stream {
	st := &Stream{Name: name, Kind: kind, Series: 2 * cfg.OTLPSeries, Rounds: cfg.Rounds,
		queries: []string{fmt.Sprintf(`{job=%q,instance=%q}`, OTLPJob, name)}}
	for _, metric := range []string{OTLPGauge, OTLPCounter} {
		for i := range cfg.OTLPSeries {
			st.keys = append(st.keys, metric+"/"+strconv.Itoa(i))
		}
	}
	st.keyOf = func(m model.Metric) string {
		name := string(m[model.MetricNameLabel])
		i, err := strconv.Atoi(string(m["series"]))
		if (name != OTLPGauge && name != OTLPCounter) || err != nil || i < 0 || i >= cfg.OTLPSeries {
			return ""
		}
		return name + "/" + strconv.Itoa(i)
	}
	st.value = func(key string, r int) float64 {
		name, series, _ := strings.Cut(key, "/")
		i, _ := strconv.Atoi(series)
		if name == OTLPGauge {
			return gaugeValue(i, r)
		}
		return counterValue(i, r)
	}
	return st
}

// gaugeValue is unique per (series, round), with a fraction; counterValue grows with the round.
func gaugeValue(series, r int) float64 { return float64(r)*1000 + float64(series) + 0.25 }
func counterValue(series, r int) float64 {
	return float64((r + 1) * (series + 1))
}

// otlpMetrics is round r of an OTLP stream: one resource (service.name=workload,
// service.instance.id=instance), a gauge and a cumulative counter of n series each at ts.
func otlpMetrics(instance string, n, r int, tsMs, startMs int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", OTLPJob)
	rm.Resource().Attributes().PutStr("service.instance.id", instance)
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/metricstor/metricstor/testbed/workload")
	ts := pcommon.Timestamp(tsMs * 1e6)
	start := pcommon.Timestamp(startMs * 1e6)

	gauge := sm.Metrics().AppendEmpty()
	gauge.SetName("workload.value")
	gdps := gauge.SetEmptyGauge().DataPoints()
	counter := sm.Metrics().AppendEmpty()
	counter.SetName("workload.count")
	sum := counter.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cdps := sum.DataPoints()
	for i := range n {
		dp := gdps.AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(gaugeValue(i, r))
		dp.Attributes().PutStr("series", strconv.Itoa(i))
		dp = cdps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetDoubleValue(counterValue(i, r))
		dp.Attributes().PutStr("series", strconv.Itoa(i))
	}
	return md
}

// classifyGRPC classifies the answer of an OTLP gRPC export; the error is nil when it was
// acknowledged whole, a permanentError when refused for good.
func classifyGRPC(ctx context.Context, resp pmetricotlp.ExportResponse, err error) (Outcome, error) {
	if err == nil {
		if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 0 {
			return Rejected, permanentError{fmt.Errorf("partial success, %d data points rejected: %s", ps.RejectedDataPoints(), ps.ErrorMessage())}
		}
		return Acked, nil
	}
	if ctx.Err() != nil {
		return Cancelled, err
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.DeadlineExceeded:
		return Timeout, err
	case codes.Canceled:
		return Cancelled, err
	case codes.Unavailable:
		// The client says Unavailable too when it has no connection: the server is down.
		msg := st.Message()
		if strings.Contains(msg, "connection") || strings.Contains(msg, "transport") || strings.Contains(msg, "EOF") {
			return Down, err
		}
		return Refused, err
	case codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return Refused, err
	default:
		return Rejected, permanentError{err}
	}
}

// postOTLP POSTs md as protobuf and classifies the answer like classifyGRPC.
func postOTLP(ctx context.Context, client *http.Client, url string, md pmetric.Metrics) (Outcome, error) {
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return Rejected, permanentError{err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Rejected, permanentError{err}
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Cancelled, err
		}
		return classifyTransport(err), err
	}
	respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		er := pmetricotlp.NewExportResponse()
		if err := er.UnmarshalProto(respBody); err != nil {
			return Rejected, permanentError{fmt.Errorf("POST %s: decode response: %w", url, err)}
		}
		if ps := er.PartialSuccess(); ps.RejectedDataPoints() != 0 {
			return Rejected, permanentError{fmt.Errorf("partial success, %d data points rejected: %s", ps.RejectedDataPoints(), ps.ErrorMessage())}
		}
		return Acked, nil
	case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
		return Refused, fmt.Errorf("POST %s: %s", url, resp.Status)
	default:
		return Rejected, permanentError{fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(respBody))}
	}
}

// Timestamp is the sample time of round r, in milliseconds: round Rounds-1 is at End, the
// rounds are Step apart.
func (w *Workload) Timestamp(r int) int64 {
	return w.Config.End.UnixMilli() - int64(w.Config.Rounds-1-r)*w.Config.Step.Milliseconds()
}
