package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/metricstor/metricstor/testbed/harness"
)

// The secured configuration under test is examples/secure/config.yaml itself (and the
// basicauth.yaml overlay), the files README.md's "Securing Metricstor" shows: the tests set only
// the environment variables the example reads.

// testCA is a certificate authority made for one test: no private key is committed.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool // trusts only this CA
}

func newTestCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return testCA{cert: cert, key: key, pool: pool}
}

// issueServer writes a server certificate for 127.0.0.1 and localhost signed by ca, and its key,
// as PEM files in dir, and returns their paths.
func (ca testCA) issueServer(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "metricstor"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// secureServer is a running binary on examples/secure/config.yaml.
type secureServer struct {
	proc    *harness.Process
	ports   harness.Ports
	rwAddr  string // remote write receiver, host:port
	token   string // the bearer token the server accepts
	ca      testCA // signed the server's certificate
	otherCA testCA // a CA the server's certificate does not chain to
}

func (s *secureServer) promqlURL() string { return "https://" + harness.Addr(s.ports.PromQL) }
func (s *secureServer) otlpHTTPURL() string {
	return "https://" + harness.Addr(s.ports.OTLPHTTP) + "/v1/metrics"
}
func (s *secureServer) rwURL() string { return "https://" + s.rwAddr + "/api/v1/write" }

// secureOptions vary the secured configuration.
type secureOptions struct {
	env       map[string]string // more environment variables
	overlays  []string          // configuration files in examples/secure merged after config.yaml
	readyAuth string            // Authorization of the readiness probe; empty: the bearer token
}

// startSecure starts the binary on examples/secure/config.yaml followed by the overlays, with a
// fresh CA, certificate, token, data directory and free ports passed through the environment
// variables the example reads.
func startSecure(t *testing.T, opts secureOptions) *secureServer {
	t.Helper()
	binary := harness.Binary(t)
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &secureServer{ca: newTestCA(t, "metricstor test CA"), otherCA: newTestCA(t, "another CA")}
	certFile, keyFile := s.ca.issueServer(t, dir)
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	s.token = "mst_" + hex.EncodeToString(tok[:])

	// One call, so that the five ports are distinct.
	free := harness.FreePorts(t, 5)
	s.ports = harness.Ports{OTLPGRPC: free[0], OTLPHTTP: free[1], PromQL: free[2], Telemetry: free[3]}
	s.rwAddr = harness.Addr(free[4])

	vars := map[string]string{
		"METRICSTOR_TOKEN":                 s.token,
		"METRICSTOR_TLS_CERT":              certFile,
		"METRICSTOR_TLS_KEY":               keyFile,
		"METRICSTOR_DATA_DIR":              filepath.Join(dir, "data"),
		"METRICSTOR_PROMQL_ENDPOINT":       harness.Addr(s.ports.PromQL),
		"METRICSTOR_OTLP_GRPC_ENDPOINT":    harness.Addr(s.ports.OTLPGRPC),
		"METRICSTOR_OTLP_HTTP_ENDPOINT":    harness.Addr(s.ports.OTLPHTTP),
		"METRICSTOR_REMOTE_WRITE_ENDPOINT": s.rwAddr,
		"METRICSTOR_TELEMETRY_PORT":        fmt.Sprint(s.ports.Telemetry),
	}
	for k, v := range opts.env {
		vars[k] = v
	}
	// The child process inherits the environment at start (t.Setenv restores it after the test).
	for k, v := range vars {
		t.Setenv(k, v)
	}
	args := []string{"--config", filepath.Join(root, "examples", "secure", "config.yaml")}
	for _, o := range opts.overlays {
		args = append(args, "--config", filepath.Join(root, "examples", "secure", o))
	}
	s.proc = harness.Start(t, "metricstor (secure)", binary, args...)
	readyAuth := opts.readyAuth
	if readyAuth == "" {
		readyAuth = "Bearer " + s.token
	}
	s.waitReady(t, vars, readyAuth)
	return s
}

// waitReady waits until every listener completes a TLS handshake and the query API's /-/ready
// answers 200 to a request with authorization (harness.WaitReady speaks plain HTTP).
func (s *secureServer) waitReady(t *testing.T, vars map[string]string, authorization string) {
	t.Helper()
	client := s.httpClient(s.ca.pool)
	deadline := time.Now().Add(time.Minute)
	for {
		if s.proc.Exited() {
			t.Fatalf("metricstor exited before it was ready; environment %v; output:\n%s", vars, s.proc.Output())
		}
		err := s.probe(client, authorization)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metricstor not ready after a minute: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *secureServer) probe(client *http.Client, authorization string) error {
	for _, l := range s.listeners() {
		dialer := &net.Dialer{Timeout: time.Second}
		conn, err := tls.DialWithDialer(dialer, "tcp", l.addr, &tls.Config{RootCAs: s.ca.pool, NextProtos: []string{l.alpn}})
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		_ = conn.Close()
	}
	req, err := http.NewRequest(http.MethodGet, s.promqlURL()+"/-/ready", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", authorization)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /-/ready: %s", resp.Status)
	}
	return nil
}

type listener struct{ name, addr, alpn string }

// listeners are the four TLS listeners with the ALPN protocol their clients offer.
func (s *secureServer) listeners() []listener {
	return []listener{
		{"otlp_grpc", harness.Addr(s.ports.OTLPGRPC), "h2"}, // gRPC requires ALPN h2
		{"otlp_http", harness.Addr(s.ports.OTLPHTTP), "http/1.1"},
		{"remote_write", s.rwAddr, "http/1.1"},
		{"promql", harness.Addr(s.ports.PromQL), "http/1.1"},
	}
}

// httpClient trusts only pool, speaks HTTP/1.1 (TLS ALPN http/1.1) and does not follow redirects.
func (s *secureServer) httpClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
}

// do sends one request with the given Authorization header (none when empty) through client
// and returns the status code and body.
func do(t *testing.T, client *http.Client, method, u, authorization string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// otlpHTTPBody is md as an OTLP/HTTP protobuf request.
func otlpHTTPBody(t *testing.T, md pmetric.Metrics) []byte {
	t.Helper()
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return body
}

var otlpProto = map[string]string{"Content-Type": "application/x-protobuf"}

// rwBody is a snappy-compressed remote write 1.0 request of one sample of series ls.
func rwBody(t *testing.T, ls map[string]string, ts time.Time, v float64) []byte {
	t.Helper()
	series := prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ts.UnixMilli(), Value: v}}}
	for k, val := range ls {
		series.Labels = append(series.Labels, prompb.Label{Name: k, Value: val})
	}
	msg, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{series}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, msg)
}

var rwHeaders = map[string]string{
	"Content-Type":                      "application/x-protobuf",
	"Content-Encoding":                  "snappy",
	"X-Prometheus-Remote-Write-Version": "0.1.0",
}

// grpcConn dials the OTLP gRPC receiver over TLS, trusting only pool.
func (s *secureServer) grpcConn(t *testing.T, pool *x509.CertPool) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	conn, err := grpc.NewClient(harness.Addr(s.ports.OTLPGRPC), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// exportGRPC sends md with the given authorization metadata (none when empty).
func exportGRPC(conn *grpc.ClientConn, authorization string, md pmetric.Metrics) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	resp, err := pmetricotlp.NewGRPCClient(conn).Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	if err != nil {
		return err
	}
	if ps := resp.PartialSuccess(); ps.RejectedDataPoints() != 0 {
		return fmt.Errorf("partial success, %d data points rejected: %s", ps.RejectedDataPoints(), ps.ErrorMessage())
	}
	return nil
}

// authAPI is a Prometheus API client that trusts the test CA and sends authorization.
func (s *secureServer) authAPI(t *testing.T, authorization string) promv1.API {
	t.Helper()
	client, err := promapi.NewClient(promapi.Config{
		Address:      s.promqlURL(),
		RoundTripper: authRoundTripper{authorization: authorization, next: s.httpClient(s.ca.pool).Transport},
	})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(client)
}

type authRoundTripper struct {
	authorization string
	next          http.RoundTripper
}

func (a authRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.authorization)
	return a.next.RoundTrip(r)
}

// queryValue runs an instant query at ts through api and returns its single sample's value.
func queryValue(t *testing.T, api promv1.API, q string, ts time.Time) float64 {
	t.Helper()
	res, _, _, err := api.Query(queryCtx(t), q, ts)
	if err != nil {
		t.Fatalf("query %s: %s", q, apiError(err))
	}
	v := vectorOf(t, q, res)
	if len(v) != 1 {
		t.Fatalf("query %s: got %d samples, want 1: %v", q, len(v), v)
	}
	return float64(v[0].Value)
}

// TestAuthTLS runs examples/secure/config.yaml: every listener (query API, OTLP gRPC and HTTP,
// remote write) speaks only TLS with a certificate the test CA signed (and a client trusting
// another CA fails the handshake), and refuses requests without the bearer token or with a wrong
// one (401, gRPC UNAUTHENTICATED) without storing anything; with the token, data pushed through
// each receiver is read back through the query API.
func TestAuthTLS(t *testing.T) {
	s := startSecure(t, secureOptions{})
	bearer := "Bearer " + s.token
	wrong := "Bearer " + strings.Repeat("0", len(s.token))
	client := s.httpClient(s.ca.pool)
	start := startTime()

	t.Run("tls_handshake", func(t *testing.T) {
		for _, l := range s.listeners() {
			dialer := &net.Dialer{Timeout: 10 * time.Second}
			conn, err := tls.DialWithDialer(dialer, "tcp", l.addr, &tls.Config{RootCAs: s.ca.pool, NextProtos: []string{l.alpn}})
			if err != nil {
				t.Errorf("%s: TLS handshake with the test CA: %v", l.name, err)
			} else {
				st := conn.ConnectionState()
				if len(st.VerifiedChains) == 0 || !st.VerifiedChains[0][len(st.VerifiedChains[0])-1].Equal(s.ca.cert) {
					t.Errorf("%s: the verified chain does not end at the test CA", l.name)
				}
				if st.Version < tls.VersionTLS12 {
					t.Errorf("%s: negotiated TLS version %x, want at least 1.2", l.name, st.Version)
				}
				_ = conn.Close()
			}
			_, err = tls.DialWithDialer(dialer, "tcp", l.addr, &tls.Config{RootCAs: s.otherCA.pool, NextProtos: []string{l.alpn}})
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("%s: TLS handshake trusting another CA: got error %v, want x509.UnknownAuthorityError", l.name, err)
			}
		}
		// Plain HTTP to a TLS port gets no API answer (Go's TLS server answers 400).
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + harness.Addr(s.ports.PromQL) + "/api/v1/query?query=1")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("plain HTTP to the TLS query API: %s: %s, want 400", resp.Status, body)
			}
		}
	})

	t.Run("refused_without_token", func(t *testing.T) {
		for _, auth := range []string{"", wrong, "Basic " + s.token, s.token} {
			code, body := do(t, client, http.MethodGet, s.promqlURL()+"/api/v1/query?query=1", auth, nil, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("query API with Authorization %q: %d %s, want 401", auth, code, body)
			}
			code, body = do(t, client, http.MethodGet, s.promqlURL()+"/-/ready", auth, nil, nil)
			if code != http.StatusUnauthorized {
				t.Errorf("/-/ready with Authorization %q: %d %s, want 401", auth, code, body)
			}
			denied := newFixture("denied-http", start)
			code, body = do(t, client, http.MethodPost, s.otlpHTTPURL(), auth, otlpHTTPBody(t, denied.metrics(0)), otlpProto)
			if code != http.StatusUnauthorized {
				t.Errorf("OTLP HTTP with Authorization %q: %d %s, want 401", auth, code, body)
			}
			series := map[string]string{"__name__": "denied_total", "job": "denied", "instance": "denied-rw"}
			code, body = do(t, client, http.MethodPost, s.rwURL(), auth, rwBody(t, series, start, 1), rwHeaders)
			if code != http.StatusUnauthorized {
				t.Errorf("remote write with Authorization %q: %d %s, want 401", auth, code, body)
			}
			err := exportGRPC(s.grpcConn(t, s.ca.pool), auth, newFixture("denied-grpc", start).metrics(0))
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("OTLP gRPC with authorization %q: got %v, want code Unauthenticated", auth, err)
			}
		}
	})

	// With the token, both OTLP receivers store the whole fixture, and the query API answers
	// everything about it; checkReadBack also shows that nothing refused above was stored (its
	// series and label value lists would differ).
	viaGRPC := newFixture("grpc-tls", start)
	viaHTTP := newFixture("http-tls", start)
	conn := s.grpcConn(t, s.ca.pool)
	for i := range steps {
		if err := exportGRPC(conn, bearer, viaGRPC.metrics(i)); err != nil {
			t.Fatalf("OTLP gRPC export with the token, step %d: %v", i, err)
		}
		code, body := do(t, client, http.MethodPost, s.otlpHTTPURL(), bearer, otlpHTTPBody(t, viaHTTP.metrics(i)), otlpProto)
		if code != http.StatusOK {
			t.Fatalf("OTLP HTTP export with the token, step %d: %d %s", i, code, body)
		}
	}
	api := s.authAPI(t, bearer)
	checkReadBack(t, api, []fixture{viaGRPC, viaHTTP})

	t.Run("remote_write", func(t *testing.T) {
		series := map[string]string{"__name__": "secure_rw_value", "job": "rw", "instance": "rw-tls"}
		code, body := do(t, client, http.MethodPost, s.rwURL(), bearer, rwBody(t, series, start, 42.5), rwHeaders)
		if code != http.StatusNoContent {
			t.Fatalf("remote write with the token: %d %s, want 204", code, body)
		}
		if got := queryValue(t, api, `secure_rw_value{job="rw",instance="rw-tls"}`, start); got != 42.5 {
			t.Errorf("secure_rw_value = %v, want 42.5", got)
		}
	})

	t.Run("nothing_refused_was_stored", func(t *testing.T) {
		q := `{__name__=~".+", instance=~"denied.*"}`
		res, _, _, err := api.Query(queryCtx(t), q, start.Add(time.Minute))
		if err != nil {
			t.Fatalf("query %s: %s", q, apiError(err))
		}
		if v := vectorOf(t, q, res); len(v) != 0 {
			t.Errorf("query %s: refused pushes were stored: %v", q, v)
		}
		names, _, _, err := api.LabelValues(queryCtx(t), "job", nil, start.Add(-time.Hour), time.Now())
		if err != nil {
			t.Fatalf("label values of job: %s", apiError(err))
		}
		if got, want := labelValues(names), []string{"rw", job}; !slices.Equal(got, want) {
			t.Errorf("label values of job: got %v, want %v", got, want)
		}
	})
}

// TestAuthBasic runs examples/secure/config.yaml with the basicauth.yaml overlay: the query API
// takes a user and password from an htpasswd file (bcrypt) and refuses anything else, the bearer
// token included, while the receivers still take the token.
func TestAuthBasic(t *testing.T) {
	const user, password = "grafana", "correct horse battery staple"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := harness.WriteFile(t, "htpasswd", user+":"+string(hash)+"\n")
	basic := func(u, p string) string {
		r := &http.Request{Header: http.Header{}}
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	s := startSecure(t, secureOptions{
		env:       map[string]string{"METRICSTOR_HTPASSWD_FILE": htpasswd},
		overlays:  []string{"basicauth.yaml"},
		readyAuth: basic(user, password),
	})
	client := s.httpClient(s.ca.pool)

	// The authenticator starts before the API serves (basicauth panics on a request before its
	// Start): the promql extension declares it as a dependency.
	out := s.proc.Output()
	authStarted := regexp.MustCompile(`Extension started\.[^\n]*"otelcol.component.id": "basicauth"`).FindStringIndex(out)
	apiListening := strings.Index(out, "Prometheus HTTP API listening")
	if authStarted == nil || apiListening < 0 || authStarted[0] > apiListening {
		t.Errorf("the basicauth extension must start before the query API listens; output:\n%s", out)
	}

	query := s.promqlURL() + "/api/v1/query?" + url.Values{"query": {"1"}}.Encode()
	for _, auth := range []string{"", basic(user, "wrong"), basic("nobody", password), "Bearer " + s.token} {
		if code, body := do(t, client, http.MethodGet, query, auth, nil, nil); code != http.StatusUnauthorized {
			t.Errorf("query API with Authorization %q: %d %s, want 401", auth, code, body)
		}
	}
	if code, body := do(t, client, http.MethodGet, query, basic(user, password), nil, nil); code != http.StatusOK {
		t.Fatalf("query API with the user's password: %d %s, want 200", code, body)
	}

	// Remote write still takes the bearer token, and only it.
	ts := startTime()
	series := map[string]string{"__name__": "secure_basic_value", "job": "rw", "instance": "rw-basic"}
	if code, body := do(t, client, http.MethodPost, s.rwURL(), basic(user, password), rwBody(t, series, ts, 7), rwHeaders); code != http.StatusUnauthorized {
		t.Errorf("remote write with basic auth: %d %s, want 401", code, body)
	}
	if code, body := do(t, client, http.MethodPost, s.rwURL(), "Bearer "+s.token, rwBody(t, series, ts, 7), rwHeaders); code != http.StatusNoContent {
		t.Fatalf("remote write with the token: %d %s, want 204", code, body)
	}
	api := s.authAPI(t, basic(user, password))
	if got := queryValue(t, api, `secure_basic_value{instance="rw-basic"}`, ts); got != 7 {
		t.Errorf("secure_basic_value = %v, want 7", got)
	}
}

// TestSecureExampleInREADME keeps README.md's "Securing Metricstor" section true: each of its
// YAML blocks whose first line names a file in examples/secure is that file byte for byte (the
// files the tests above run), both files are shown, and every listen address of the example
// defaults to loopback.
func TestSecureExampleInREADME(t *testing.T) {
	root := checkREADMEExamples(t, "Securing Metricstor", "secure", []string{"config.yaml", "basicauth.yaml"})

	cfg, err := os.ReadFile(filepath.Join(root, "examples", "secure", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`(?m)^\s*(endpoint|host):\s*(\S+)`)
	matches := listen.FindAllStringSubmatch(string(cfg), -1)
	// OTLP gRPC, OTLP HTTP, remote_write, promql, telemetry.
	if len(matches) != 5 {
		t.Errorf("examples/secure/config.yaml: found %d endpoint/host settings, want 5", len(matches))
	}
	for _, m := range matches {
		addr := m[2]
		if strings.HasPrefix(addr, "${env:") {
			_, addr, _ = strings.Cut(strings.TrimSuffix(addr, "}"), ":-")
		}
		if !strings.HasPrefix(addr, "127.0.0.1") {
			t.Errorf("examples/secure/config.yaml: %s %s does not default to loopback 127.0.0.1", m[1], m[2])
		}
	}
}
