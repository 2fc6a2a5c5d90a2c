package receiver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/golang/snappy"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/metricstor/metricstor/receiver/internal/metadata"
)

// FuzzDecodeRequest feeds arbitrary decompressed bodies, as 1.0 or 2.0, to the receiver's
// handler. It must not panic, must answer only 204 or 400, and on a 2.0 success hand the pipeline
// exactly the samples and histograms its headers report. Seed corpus: testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	v1, err := validV1().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	v2, err := validV2().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v1, false)
	f.Add(v2, true)

	set := receiver.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: componenttest.NewNopTelemetrySettings()}
	set.Logger = zap.NewNop()
	f.Fuzz(func(t *testing.T, body []byte, isV2 bool) {
		sink := new(consumertest.MetricsSink)
		r, err := newRemoteWriteReceiver(createDefaultConfig().(*Config), set, sink)
		if err != nil {
			t.Fatal(err)
		}
		ct := ctV1
		if isV2 {
			ct = ctV2
		}
		req := httptest.NewRequest(http.MethodPost, WritePath, bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		r.handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent:
			if isV2 {
				s, _ := strconv.Atoi(rec.Header().Get(hdrSamples))
				h, _ := strconv.Atoi(rec.Header().Get(hdrHistograms))
				if got := sink.DataPointCount(); got != s+h {
					t.Fatalf("pipeline got %d points, headers say %d samples + %d histograms", got, s, h)
				}
			}
		case http.StatusBadRequest:
			if rec.Body.Len() == 0 {
				t.Fatal("400 without a message")
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	})
}

// FuzzDecodeSnappy checks the decoder of bodies without Content-Encoding: no panic, and nothing
// larger than the limit is ever returned.
func FuzzDecodeSnappy(f *testing.F) {
	v1, err := validV1().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snappy.Encode(nil, v1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	const limit = 1 << 16
	dec := snappyDecoder(limit, false)
	f.Fuzz(func(t *testing.T, body []byte) {
		rc, err := dec(io.NopCloser(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err) // decoding happens on Read
		}
		defer rc.Close()
		out, err := io.ReadAll(rc)
		if err != nil {
			if _, ok := errors.AsType[*bodyError](err); !ok {
				t.Fatalf("decode error %v is not a *bodyError (no status to answer with)", err)
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("decoded %d bytes, limit %d", len(out), limit)
		}
		if want, derr := snappy.Decode(nil, body); len(body) > 0 && (derr != nil || !bytes.Equal(want, out)) {
			t.Fatalf("decoder disagrees with snappy.Decode (%v)", derr)
		}
	})
}
