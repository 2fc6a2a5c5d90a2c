package receiver

import (
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The remote write 2.0 request is decoded by hand too (see decode_v1.go), into a
// writev2.Request. The generated Unmarshal allocates, for every series, a slice of label
// references and one of samples, and a string per symbol; here the references and samples of
// all series live in two arrays reused from request to request (v2Buffers), each series'
// slices are parts of them, and the symbols are substrings of one buffer of the request's own
// (labelStrings). Histograms, exemplars and metadata are rare and are handed to the generated
// Unmarshal, into fresh values: a histogram's buckets become the pipeline data's, which must not
// share memory with a later request.
//
// It accepts exactly what the generated Unmarshal accepts (FuzzDecodeV2 compares them), down to
// its reading of packed label references (a varint may run past the packed field's end, as far
// as the series' end). Unknown fields are skipped, not kept in XXX_unrecognized.

// Field numbers of io.prometheus.write.v2.Request and TimeSeries
// (prompb/io/prometheus/write/v2/types.proto).
const (
	fieldV2Symbols    = 4
	fieldV2Timeseries = 5

	fieldV2SeriesLabelsRefs = 1
	fieldV2SeriesSamples    = 2
	fieldV2SeriesHistograms = 3
	fieldV2SeriesExemplars  = 4
	fieldV2SeriesMetadata   = 5
)

// v2Buffers holds what a decoded 2.0 request's series refer to: reused by the next request
// decoded with them, so the request must be done with first (the converter copies what it keeps).
type v2Buffers struct {
	refs    []uint32
	samples []writev2.Sample
	// parts are the bounds of each series' references and samples in refs and samples, which
	// may move as they grow: the series' slices are set once the request is decoded.
	parts []v2Parts
	strs  labelStrings
}

type v2Parts struct{ refs, samples span }

func (d *v2Buffers) reset() {
	if cap(d.refs) > maxPooledItems || cap(d.samples) > maxPooledItems || cap(d.parts) > maxPooledSeries {
		*d = v2Buffers{} // see maxPooledSeries
		return
	}
	d.refs, d.samples, d.parts = d.refs[:0], d.samples[:0], d.parts[:0]
}

// decodeV2 decodes body into req, whose slices it appends to (emptied by the caller).
func decodeV2(req *writev2.Request, body []byte, d *v2Buffers) error {
	d.reset()
	d.strs.reset(len(body))
	p := pbuf{b: body}
	for p.i < len(p.b) {
		field, wire, err := p.tag("Request")
		if err != nil {
			return err
		}
		switch field {
		case fieldV2Symbols:
			lo, hi, err := p.message(wire, "Symbols")
			if err != nil {
				return err
			}
			req.Symbols = append(req.Symbols, d.strs.make(body[lo:hi], ""))
		case fieldV2Timeseries:
			lo, hi, err := p.message(wire, "Timeseries")
			if err != nil {
				return err
			}
			req.Timeseries = append(req.Timeseries, writev2.TimeSeries{})
			if err := d.decodeSeries(&req.Timeseries[len(req.Timeseries)-1], body[:hi], lo); err != nil {
				return err
			}
		default:
			if err := p.skip(wire); err != nil {
				return err
			}
		}
	}
	for i, pt := range d.parts {
		ts := &req.Timeseries[i]
		if pt.refs.hi > pt.refs.lo {
			ts.LabelsRefs = d.refs[pt.refs.lo:pt.refs.hi:pt.refs.hi]
		}
		if pt.samples.hi > pt.samples.lo {
			ts.Samples = d.samples[pt.samples.lo:pt.samples.hi:pt.samples.hi]
		}
	}
	return nil
}

// decodeSeries decodes the TimeSeries in b[start:] into ts, its references and samples into d.
func (d *v2Buffers) decodeSeries(ts *writev2.TimeSeries, b []byte, start int) error {
	pt := v2Parts{
		refs:    span{int32(len(d.refs)), int32(len(d.refs))},
		samples: span{int32(len(d.samples)), int32(len(d.samples))},
	}
	p := pbuf{b: b, i: start}
	for p.i < len(p.b) {
		field, wire, err := p.tag("TimeSeries")
		if err != nil {
			return err
		}
		switch field {
		case fieldV2SeriesLabelsRefs:
			switch wire {
			case wireVarint:
				v, err := p.varint()
				if err != nil {
					return err
				}
				d.refs = append(d.refs, uint32(v))
			case wireBytes:
				lo, hi, err := p.sub()
				if err != nil {
					return err
				}
				// As the generated code reads a packed field: varints up to its end, each read
				// as far as it goes within the series.
				for p.i = lo; p.i < hi; {
					v, err := p.varint()
					if err != nil {
						return err
					}
					d.refs = append(d.refs, uint32(v))
				}
			default:
				return wrongWire(wire, "LabelsRefs")
			}
		case fieldV2SeriesSamples:
			lo, hi, err := p.message(wire, "Samples")
			if err != nil {
				return err
			}
			s, err := decodeSample(b[:hi], lo, true)
			if err != nil {
				return err
			}
			d.samples = append(d.samples, writev2.Sample{Value: s.v, Timestamp: s.t, StartTimestamp: s.st})
		case fieldV2SeriesHistograms:
			lo, hi, err := p.message(wire, "Histograms")
			if err != nil {
				return err
			}
			if ts.Histograms, err = appendDecoded(ts.Histograms, b[lo:hi]); err != nil {
				return err
			}
		case fieldV2SeriesExemplars:
			lo, hi, err := p.message(wire, "Exemplars")
			if err != nil {
				return err
			}
			if ts.Exemplars, err = appendDecoded(ts.Exemplars, b[lo:hi]); err != nil {
				return err
			}
		case fieldV2SeriesMetadata:
			lo, hi, err := p.message(wire, "Metadata")
			if err != nil {
				return err
			}
			// Merged into what an earlier occurrence set, as the generated code does.
			if err := ts.Metadata.Unmarshal(b[lo:hi]); err != nil {
				return err
			}
		default:
			if err := p.skip(wire); err != nil {
				return err
			}
		}
	}
	pt.refs.hi = int32(len(d.refs))
	pt.samples.hi = int32(len(d.samples))
	d.parts = append(d.parts, pt)
	return nil
}
