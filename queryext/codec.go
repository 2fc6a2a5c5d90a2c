package queryext

import (
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
	stream := jsoniter.NewStream(jsoniter.ConfigCompatibleWithStandardLibrary, nil, estimateJSONSize(resp))
	stream.WriteVal(resp)
	if stream.Error != nil {
		return nil, stream.Error
	}
	return stream.Buffer(), nil
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
		for _, s := range r {
			// A histogram point is larger than a float point; the buffer then grows as before.
			n += jsonBytesPerSeries + jsonBytesPerPoint*(len(s.Floats)+len(s.Histograms))
		}
	case promql.Vector:
		n += (jsonBytesPerSeries + jsonBytesPerPoint) * len(r)
	}
	return n
}
