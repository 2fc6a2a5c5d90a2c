package queryext

import (
	"bytes"
	"math"
	"runtime"
	"strconv"
	"sync"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/promql"
	v1 "github.com/prometheus/prometheus/web/api/v1"
)

// sizedJSONCodec is Prometheus's v1.JSONCodec writing into a buffer sized for the answer up
// front. v1.JSONCodec marshals into a pooled buffer that doubles as it fills, then copies the
// result out; a query that allocates as much as a day's range query lets the collector empty
// the pool between two answers, so an answer of several MB is copied about three times over.
// The encoders are the same (jsoniter's standard-library configuration with those web/api/v1
// registers for promql's types), so are the bytes: TestSizedJSONCodecMatchesPrometheus.
type sizedJSONCodec struct{ v1.JSONCodec }

// A float point is `[1700000000.123,"-0.00123456789012345"],`, 20 to 45 bytes; a series' labels
// about 100 to 200. Too short an estimate costs the doubling it was meant to save.
const (
	jsonBytesPerPoint  = 40
	jsonBytesPerSeries = 200
	jsonBytesMin       = 512
)

func (sizedJSONCodec) Encode(resp *v1.Response) ([]byte, error) {
	if b, ok, err := encodeMatrixInParts(resp, runtime.GOMAXPROCS(0)); ok {
		return b, err
	}
	return encodeJSON(resp, estimateJSONSize(resp))
}

// encodeJSON writes v as web/api/v1 does, into a buffer of size bytes to start with.
func encodeJSON(v any, size int) ([]byte, error) {
	stream := jsoniter.NewStream(jsoniter.ConfigCompatibleWithStandardLibrary, nil, size)
	stream.WriteVal(v)
	if stream.Error != nil {
		return nil, stream.Error
	}
	return stream.Buffer(), nil
}

// parallelJSONMinPoints is the size of a matrix answer from which its series are encoded on
// GOMAXPROCS goroutines: about 1 MB of JSON, a few ms on one core. A range query's engine is
// done by the time its answer is encoded, so the cores it used are free; on one core a day's
// answer of 160 series took 45-60 ms, half of what the API added to the query.
const parallelJSONMinPoints = 25_000

// matrixAnswerHead is how every successful matrix answer starts (web/api/v1.Response's and
// QueryData's field order; status and resultType are fixed words): its series come after it.
var matrixAnswerHead = []byte(`{"status":"success","data":{"resultType":"matrix","result":[`)

// encodeMatrixInParts encodes a large matrix answer with its series split into up to parts
// parts encoded at the same time, and ok is false where it does not apply. The bytes are those of one encoding:
// the answer is encoded once without its series (the envelope: status, data, stats, warnings,
// infos), and the parts' series, each encoded by the same encoder as a matrix of its own, are
// joined by commas between the envelope's brackets.
func encodeMatrixInParts(resp *v1.Response, parts int) (b []byte, ok bool, err error) {
	qd, isQuery := resp.Data.(*v1.QueryData)
	if !isQuery {
		return nil, false, nil
	}
	m, isMatrix := qd.Result.(promql.Matrix)
	points := 0
	for _, s := range m {
		points += len(s.Floats) + len(s.Histograms)
	}
	parts = min(parts, len(m))
	if !isMatrix || parts < 2 || points < parallelJSONMinPoints {
		return nil, false, nil
	}
	envelopeData := *qd
	envelopeData.Result = promql.Matrix{}
	envelope := *resp
	envelope.Data = &envelopeData
	head, err := encodeJSON(&envelope, jsonBytesMin)
	if err != nil {
		return nil, true, err
	}
	if !bytes.HasPrefix(head, matrixAnswerHead) || len(head) <= len(matrixAnswerHead) || head[len(matrixAnswerHead)] != ']' {
		return nil, false, nil // not the shape this splices into: encode it whole
	}

	// Parts of about equal points, in the matrix's order.
	encoded := make([][]byte, parts)
	errs := make([]error, parts)
	var wg sync.WaitGroup
	lo, done := 0, 0
	for i := range parts {
		hi, want := lo, points*(i+1)/parts
		for hi < len(m)-(parts-1-i) && (hi == lo || done < want) {
			done += len(m[hi].Floats) + len(m[hi].Histograms)
			hi++
		}
		if i == parts-1 {
			hi = len(m)
		}
		part := m[lo:hi]
		wg.Go(func() { encoded[i], errs[i] = encodeMatrix(part) })
		lo = hi
	}
	wg.Wait()

	size := len(head)
	for i, e := range encoded {
		if errs[i] != nil {
			return nil, true, errs[i]
		}
		size += len(e) - 1 // less its brackets, plus a comma (or nothing, for the last)
	}
	b = make([]byte, 0, size)
	b = append(b, head[:len(matrixAnswerHead)]...)
	for i, e := range encoded {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e[1:len(e)-1]...) // each is `[series,...]`
	}
	return append(b, head[len(matrixAnswerHead):]...), true, nil
}

// estimateJSONSize guesses the size of resp's JSON from the points of a range or instant
// query's answer; other answers start at jsonBytesMin.
func estimateJSONSize(resp *v1.Response) int {
	qd, ok := resp.Data.(*v1.QueryData)
	if !ok {
		return jsonBytesMin
	}
	n := jsonBytesMin
	switch r := qd.Result.(type) {
	case promql.Matrix:
		n += estimateMatrixSize(r)
	case promql.Vector:
		n += (jsonBytesPerSeries + jsonBytesPerPoint) * len(r)
	}
	return n
}

func estimateMatrixSize(m promql.Matrix) int {
	n := 0
	for _, s := range m {
		// A histogram point is larger than a float point; the buffer then grows as before.
		n += jsonBytesPerSeries + jsonBytesPerPoint*(len(s.Floats)+len(s.Histograms))
	}
	return n
}

// encodeMatrix writes m as web/api/v1 does (`[series,...]`), its float points without jsoniter:
// a day's answer is mostly points, and writing each through the encoder's stream (a pointer
// store into the stream per write, which the garbage collector's write barrier records while it
// marks, as it mostly does during a large query) cost about as much as formatting the floats.
// A series' labels, and a series with histograms whole, are the encoder's.
func encodeMatrix(m promql.Matrix) ([]byte, error) {
	b := make([]byte, 0, estimateMatrixSize(m))
	// A range query's points are at its steps: the j-th point of most series is at the same
	// time. The text of each is kept by index and copied where the time is the one before.
	var times []timestampText
	b = append(b, '[')
	for i, s := range m {
		if i > 0 {
			b = append(b, ',')
		}
		if len(s.Histograms) > 0 || len(s.Floats) == 0 {
			e, err := encodeJSON(s, jsonBytesPerSeries)
			if err != nil {
				return nil, err
			}
			b = append(b, e...)
			continue
		}
		// `{"metric":{...}}`, then the points before its closing brace, as marshalSeriesJSON
		// writes them.
		e, err := encodeJSON(promql.Series{Metric: s.Metric, DropName: s.DropName}, jsonBytesPerSeries)
		if err != nil {
			return nil, err
		}
		if len(e) == 0 || e[len(e)-1] != '}' {
			return encodeJSON(m, estimateMatrixSize(m))
		}
		b = append(b, e[:len(e)-1]...)
		b = append(b, `,"values":[`...)
		for j, p := range s.Floats {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			if j >= len(times) {
				times = append(times, timestampText{t: p.T + 1}) // not p.T: written below
			}
			if tt := &times[j]; tt.t == p.T {
				b = append(b, tt.text[:tt.n]...)
			} else {
				at := len(b)
				b = appendTimestampJSON(b, p.T)
				tt.t, tt.n = p.T, uint8(copy(tt.text[:], b[at:]))
			}
			b = append(b, ',', '"')
			b = appendFloatJSON(b, p.F)
			b = append(b, '"', ']')
		}
		b = append(b, ']', '}')
	}
	return append(b, ']'), nil
}

// timestampText is the text of a time as appendTimestampJSON writes it (at most 25 bytes).
type timestampText struct {
	t    int64
	n    uint8
	text [25]byte
}

// appendTimestampJSON writes t (ms) as seconds, as util/jsonutil.MarshalTimestamp does.
func appendTimestampJSON(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if fraction := t % 1000; fraction != 0 {
		b = append(b, '.')
		if fraction < 100 {
			b = append(b, '0')
		}
		if fraction < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, fraction, 10)
	}
	return b
}

// appendFloatJSON writes f as util/jsonutil.MarshalFloat does, without its quotes.
func appendFloatJSON(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}
