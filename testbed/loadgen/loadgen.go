// Package loadgen is a Prometheus remote write load generator (1.0, or 2.0 with Config.V2) for
// loopback servers: N node-exporter-like series (job="loadgen") × M samples 15 s apart in
// sample time, the last one near now, sent as snappy-compressed protobuf requests of up to 2,000
// samples by S concurrent senders, each owning a contiguous shard of the series (so every
// series' samples arrive in order). Round 0 sends the first sample of every series (the "new series" phase); rounds 1..M-1
// send the rest (the "steady" phase). Requests answered 5xx or 429 are retried with exponential
// backoff; any other non-2xx answer fails the run at once, with the server's message.
//
// The generator is bounded: series, samples and run time have hard limits, and it only sends
// to loopback addresses (127.0.0.0/8, ::1, localhost). The command is testbed/loadgen/cmd/loadgen.
package loadgen // import "github.com/metricstor/metricstor/testbed/loadgen"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Hard limits of a run.
const (
	MaxSeries       = 5_000_000
	MaxSamples      = 10_000
	MaxTotalSamples = 200_000_000
	MaxSenders      = 64
	MaxTimeout      = time.Hour
)

// Config describes a run. Zero fields take the defaults of DefaultConfig.
type Config struct {
	URL       string        // remote write endpoint, e.g. http://127.0.0.1:9201/api/v1/write
	Series    int           // number of series (default 100,000)
	Samples   int           // samples per series, i.e. rounds (default 100)
	Senders   int           // concurrent senders (default 4)
	BatchSize int           // samples per request (default 2,000)
	Interval  time.Duration // sample-time distance between rounds (default 15 s)
	// End is the timestamp of the last round; zero means time.Now() when the generator is
	// created, truncated to the millisecond.
	End time.Time
	// Timeout bounds the whole run (every Run call together, from New); default 10 minutes.
	Timeout time.Duration
	// MaxRetries is the number of retries of a request answered 5xx/429 (default 10); the
	// backoff starts at 50 ms and doubles up to 5 s.
	MaxRetries int
	// RequestTimeout bounds each attempt of a request (default one minute).
	RequestTimeout time.Duration
	// V2 sends remote write 2.0 (io.prometheus.write.v2.Request, each request with its own
	// symbol table and each series with its metric's type and help, as Prometheus does) instead
	// of 1.0.
	V2 bool
	// OnAttempt, when set, is called after every attempt of every request (concurrently, from
	// the senders): the HTTP status (0 when no answer came: connection refused, timeout,
	// cancelled) and the error (nil on 2xx). Soaks classify failures with it.
	OnAttempt func(status int, err error)
}

// DefaultConfig returns the defaults: 100,000 series × 100 samples, 4 senders, 2,000 samples per
// request, 15 s apart, 10 minutes at most.
func DefaultConfig() Config {
	return Config{Series: 100_000, Samples: 100, Senders: 4, BatchSize: 2000, Interval: 15 * time.Second,
		Timeout: 10 * time.Minute, MaxRetries: 10, RequestTimeout: time.Minute}
}

func (c *Config) fill() {
	d := DefaultConfig()
	if c.Series == 0 {
		c.Series = d.Series
	}
	if c.Samples == 0 {
		c.Samples = d.Samples
	}
	if c.Senders == 0 {
		c.Senders = d.Senders
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
}

// Validate checks the limits and that the URL is an http URL on a loopback address.
func (c Config) Validate() error {
	switch {
	case c.Series < 1 || c.Series > MaxSeries:
		return fmt.Errorf("series: %d not in [1, %d]", c.Series, MaxSeries)
	case c.Samples < 1 || c.Samples > MaxSamples:
		return fmt.Errorf("samples: %d not in [1, %d]", c.Samples, MaxSamples)
	case int64(c.Series)*int64(c.Samples) > MaxTotalSamples:
		return fmt.Errorf("series × samples: %d above %d", int64(c.Series)*int64(c.Samples), MaxTotalSamples)
	case c.Senders < 1 || c.Senders > MaxSenders:
		return fmt.Errorf("senders: %d not in [1, %d]", c.Senders, MaxSenders)
	case c.Senders > c.Series:
		return fmt.Errorf("senders: %d more than the %d series", c.Senders, c.Series)
	case c.BatchSize < 1 || c.BatchSize > 100_000:
		return fmt.Errorf("batch size: %d not in [1, 100000]", c.BatchSize)
	case c.Interval <= 0:
		return fmt.Errorf("interval: must be positive")
	case c.Timeout <= 0 || c.Timeout > MaxTimeout:
		return fmt.Errorf("timeout: %s not in (0, %s]", c.Timeout, MaxTimeout)
	case c.MaxRetries < 0 || c.MaxRetries > 100:
		return fmt.Errorf("max retries: %d not in [0, 100]", c.MaxRetries)
	case c.RequestTimeout <= 0 || c.RequestTimeout > MaxTimeout:
		return fmt.Errorf("request timeout: %s not in (0, %s]", c.RequestTimeout, MaxTimeout)
	}
	return CheckLoopback(c.URL)
}

// CheckLoopback returns an error unless raw is an http:// URL whose host is a loopback IP
// address or "localhost". Host names are not resolved.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("url %q: only http:// is supported", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("url %q: the load generator only sends to loopback addresses (127.0.0.0/8, ::1, localhost)", raw)
	}
	return nil
}

// Stats are the counts of one Run.
type Stats struct {
	Samples  int64         // samples acknowledged (2xx)
	Requests int64         // requests acknowledged
	Retries  int64         // retried attempts (5xx, 429, transport errors)
	Bytes    int64         // compressed bytes of the acknowledged requests
	Elapsed  time.Duration // wall time of the Run
	// Latencies are the times from the first attempt of each acknowledged request to its 2xx
	// answer, retries and their backoff included (what a sender waits), in no particular order.
	Latencies []time.Duration
}

// Latency returns the q-quantile (0 <= q <= 1, nearest rank) of the request latencies, 0 when
// there are none.
func (s Stats) Latency(q float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.Latencies)
	slices.Sort(l)
	i := int(math.Ceil(q*float64(len(l)))) - 1
	return l[min(max(i, 0), len(l)-1)]
}

// Add returns the sum of two Stats (the latencies of both, the elapsed times added).
func (s Stats) Add(o Stats) Stats {
	return Stats{
		Samples: s.Samples + o.Samples, Requests: s.Requests + o.Requests, Retries: s.Retries + o.Retries,
		Bytes: s.Bytes + o.Bytes, Elapsed: s.Elapsed + o.Elapsed,
		Latencies: append(slices.Clip(s.Latencies), o.Latencies...),
	}
}

// SamplesPerSecond is the acknowledged samples over the wall time.
func (s Stats) SamplesPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Samples) / s.Elapsed.Seconds()
}

// Generator sends the rounds of one configuration. Create it with New.
type Generator struct {
	cfg      Config
	labels   [][]prompb.Label                 // by series id
	meta     map[string]prompb.MetricMetadata // by metric name, for 2.0
	client   *http.Client
	endMs    int64
	deadline time.Time
}

// New validates cfg (filling in defaults) and prepares the label sets of every series.
func New(cfg Config) (*Generator, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.End.IsZero() {
		cfg.End = time.Now()
	}
	g := &Generator{
		cfg:    cfg,
		labels: make([][]prompb.Label, cfg.Series),
		client: &http.Client{
			Transport: &http.Transport{
				MaxIdleConnsPerHost: cfg.Senders,
				DisableCompression:  true,
				// Never through a proxy: the target is on this host.
				Proxy: nil,
			},
			Timeout: cfg.RequestTimeout,
			// A redirect could lead off loopback: never follow one.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		endMs:    cfg.End.UnixMilli(),
		deadline: time.Now().Add(cfg.Timeout),
	}
	for id := range g.labels {
		g.labels[id] = Labels(id)
	}
	g.meta = map[string]prompb.MetricMetadata{}
	for _, m := range Metadata() {
		g.meta[m.MetricFamilyName] = m
	}
	return g, nil
}

// Config returns the configuration with defaults filled in.
func (g *Generator) Config() Config { return g.cfg }

// Timestamp returns the sample time of round r, in milliseconds.
func (g *Generator) Timestamp(r int) int64 {
	return g.endMs - int64(g.cfg.Samples-1-r)*g.cfg.Interval.Milliseconds()
}

// TotalSamples is Series × Samples.
func (g *Generator) TotalSamples() int64 { return int64(g.cfg.Series) * int64(g.cfg.Samples) }

// SendMetadata sends one request with the metadata (type, help) of every metric family, as
// Prometheus does with remote write 1.0.
func (g *Generator) SendMetadata(ctx context.Context) error {
	if g.cfg.V2 {
		return nil // 2.0 carries it in every series
	}
	ctx, cancel := context.WithDeadline(ctx, g.deadline)
	defer cancel()
	req := prompb.WriteRequest{Metadata: Metadata()}
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	_, err = g.post(ctx, snappy.Encode(nil, raw))
	return err
}

// Senders is the number of senders, each owning a contiguous shard of the series.
func (g *Generator) Senders() int { return g.cfg.Senders }

// Shard returns the series ids [lo, hi) of sender s.
func (g *Generator) Shard(s int) (lo, hi int) {
	return s * g.cfg.Series / g.cfg.Senders, (s + 1) * g.cfg.Series / g.cfg.Senders
}

// Run sends rounds [from, to) and returns when every sample of them is acknowledged, or at the
// first failure (a non-retryable answer, retries exhausted, the run's deadline, ctx).
func (g *Generator) Run(ctx context.Context, from, to int) (Stats, error) {
	return g.run(ctx, 0, g.cfg.Senders, from, to)
}

// RunSender is Run for the shard of sender s alone, for callers that run the senders
// themselves and keep a ledger of what each one had acknowledged: a sender sends its rounds in
// order (series lo..hi-1 within a round) and stops at its first failure, so what it had
// acknowledged is always a prefix of that order.
func (g *Generator) RunSender(ctx context.Context, s, from, to int) (Stats, error) {
	if s < 0 || s >= g.cfg.Senders {
		return Stats{}, fmt.Errorf("sender %d not within [0, %d)", s, g.cfg.Senders)
	}
	return g.run(ctx, s, s+1, from, to)
}

// run runs senders [first, last) over rounds [from, to).
func (g *Generator) run(ctx context.Context, first, last, from, to int) (Stats, error) {
	if from < 0 || to > g.cfg.Samples || from >= to {
		return Stats{}, fmt.Errorf("rounds [%d, %d) not within [0, %d)", from, to, g.cfg.Samples)
	}
	ctx, cancel := context.WithDeadline(ctx, g.deadline)
	defer cancel()
	start := time.Now()
	var (
		stats    Stats
		latMu    sync.Mutex
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for s := first; s < last; s++ {
		lo, hi := g.Shard(s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, err := g.send(ctx, lo, hi, from, to, &stats)
			latMu.Lock()
			stats.Latencies = append(stats.Latencies, lat...)
			latMu.Unlock()
			if err != nil {
				errOnce.Do(func() {
					firstErr = fmt.Errorf("sender %d (series %d..%d): %w", s, lo, hi-1, err)
					cancel()
				})
			}
		}()
	}
	wg.Wait()
	stats.Elapsed = time.Since(start)
	return stats, firstErr
}

// send is one sender: series [lo, hi), rounds [from, to), in requests of up to BatchSize samples.
// It returns the latencies of its acknowledged requests.
func (g *Generator) send(ctx context.Context, lo, hi, from, to int, stats *Stats) ([]time.Duration, error) {
	var lat []time.Duration
	batch := g.cfg.BatchSize
	samples := make([]prompb.Sample, batch)
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, batch)}
	var raw, compressed []byte
	v2 := v2Batch{symbols: writev2.NewSymbolTable()}
	flush := func() error {
		if len(req.Timeseries) == 0 {
			return nil
		}
		var err error
		if g.cfg.V2 {
			raw, err = v2.marshal(raw, req.Timeseries, g.meta)
		} else {
			size := req.Size()
			if cap(raw) < size {
				raw = make([]byte, size)
			}
			raw = raw[:size]
			_, err = req.MarshalToSizedBuffer(raw)
		}
		if err != nil {
			return err
		}
		compressed = snappy.Encode(compressed[:cap(compressed)], raw)
		t0 := time.Now()
		retries, err := g.post(ctx, compressed)
		atomic.AddInt64(&stats.Retries, int64(retries))
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t0))
		atomic.AddInt64(&stats.Samples, int64(len(req.Timeseries)))
		atomic.AddInt64(&stats.Requests, 1)
		atomic.AddInt64(&stats.Bytes, int64(len(compressed)))
		req.Timeseries = req.Timeseries[:0]
		return nil
	}
	for r := from; r < to; r++ {
		ts := g.Timestamp(r)
		for id := lo; id < hi; id++ {
			i := len(req.Timeseries)
			samples[i] = prompb.Sample{Value: Value(id, r), Timestamp: ts}
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: g.labels[id], Samples: samples[i : i+1 : i+1]})
			if len(req.Timeseries) == batch {
				if err := flush(); err != nil {
					return lat, err
				}
			}
		}
	}
	return lat, flush()
}

// ErrNotRetryable marks a failure that is not retried (an answer other than 2xx, 5xx and 429);
// errors.Is finds it in what Run returns.
var ErrNotRetryable = errors.New("not retryable")

// post sends one compressed request, retrying 5xx, 429 and transport errors with backoff. It
// returns the number of retries.
func (g *Generator) post(ctx context.Context, body []byte) (int, error) {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := g.postOnce(ctx, body)
		if err == nil {
			return attempt, nil
		}
		if errors.Is(err, ErrNotRetryable) || ctx.Err() != nil {
			return attempt, err
		}
		if attempt >= g.cfg.MaxRetries {
			return attempt, fmt.Errorf("giving up after %d retries: %w", attempt, err)
		}
		select {
		case <-ctx.Done():
			return attempt, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (g *Generator) postOnce(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRetryable, err)
	}
	if g.cfg.V2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("User-Agent", "metricstor-loadgen")
	resp, err := g.client.Do(req)
	if err != nil {
		if g.cfg.OnAttempt != nil {
			g.cfg.OnAttempt(0, err)
		}
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		err = nil
	case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
		err = fmt.Errorf("POST %s: %s: %s", g.cfg.URL, resp.Status, bytes.TrimSpace(msg))
	default:
		err = fmt.Errorf("%w: POST %s: %s: %s", ErrNotRetryable, g.cfg.URL, resp.Status, bytes.TrimSpace(msg))
	}
	if g.cfg.OnAttempt != nil {
		g.cfg.OnAttempt(resp.StatusCode, err)
	}
	return err
}

// v2Batch builds 2.0 requests from the 1.0 series of a batch, reusing its buffers.
type v2Batch struct {
	symbols writev2.SymbolsTable
	req     writev2.Request
	lb      labels.ScratchBuilder
	refs    []uint32 // of every series of the request
	scratch []uint32
}

// marshal appends the 2.0 encoding of series (labels sorted, one sample each) to raw[:0]: one
// symbol table for the request, each series with the metadata of its metric name.
func (b *v2Batch) marshal(raw []byte, series []prompb.TimeSeries, meta map[string]prompb.MetricMetadata) ([]byte, error) {
	b.symbols.Reset()
	b.refs = b.refs[:0]
	b.req.Timeseries = b.req.Timeseries[:0]
	for _, ts := range series {
		b.lb.Reset()
		name := ""
		for _, l := range ts.Labels {
			b.lb.Add(l.Name, l.Value)
			if l.Name == model.MetricNameLabel {
				name = l.Value
			}
		}
		b.lb.Sort()
		b.scratch = b.symbols.SymbolizeLabels(b.lb.Labels(), b.scratch)
		lo := len(b.refs)
		b.refs = append(b.refs, b.scratch...)
		var md writev2.Metadata
		if m, ok := meta[name]; ok {
			md.Type = writev2.Metadata_METRIC_TYPE_GAUGE
			if m.Type == prompb.MetricMetadata_COUNTER {
				md.Type = writev2.Metadata_METRIC_TYPE_COUNTER
			}
			md.HelpRef = b.symbols.Symbolize(m.Help)
		}
		b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{
			LabelsRefs: b.refs[lo:len(b.refs):len(b.refs)],
			Samples:    []writev2.Sample{{Value: ts.Samples[0].Value, Timestamp: ts.Samples[0].Timestamp}},
			Metadata:   md,
		})
	}
	b.req.Symbols = b.symbols.Symbols()
	size := b.req.Size()
	raw = slices.Grow(raw[:0], size)[:size]
	_, err := b.req.MarshalToSizedBuffer(raw)
	return raw, err
}
