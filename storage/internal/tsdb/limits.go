package tsdb

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
)

// Limits bound what one series may look like and how many series the head may hold. They are
// checked when a series enters memory through an appender (a series never seen, or one that
// head garbage collection dropped and that is appended to again): series already in memory are
// never refused, so lowering a limit does not cut off a series that is being written. A zero
// field disables its limit. The names in the error messages are the storage extension's config
// keys, which users see.
type Limits struct {
	// LabelsPerSeries is the most labels a series may have, __name__ included.
	LabelsPerSeries int
	// LabelNameLength is the longest label name, in bytes.
	LabelNameLength int
	// LabelValueLength is the longest label value, in bytes (the metric name included).
	LabelValueLength int
	// ActiveSeries is the most series the head may hold: series appended to within the last
	// hour plus the out-of-order window (head garbage collection drops the others). New series
	// are refused past it; series in memory go on being appended.
	ActiveSeries int
}

// LimitRejections count the samples refused by each limit.
type LimitRejections struct {
	LabelsPerSeries, LabelNameLength, LabelValueLength, ActiveSeries atomic.Int64
}

// checkSeriesLimits tells whether a series new to memory passes the label limits. It returns
// an error wrapping ErrLimitExceeded that names the limit, its value and the series. One pass
// over the labels (Labels.Len decodes them all too).
func (db *DB) checkSeriesLimits(lset labels.Labels) error {
	lim := &db.opts.Limits
	if lim.LabelsPerSeries <= 0 && lim.LabelNameLength <= 0 && lim.LabelValueLength <= 0 {
		return nil
	}
	maxName, maxValue := noLimit(lim.LabelNameLength), noLimit(lim.LabelValueLength)
	n := 0
	var long labels.Label // the first label past a length limit
	lset.Range(func(l labels.Label) {
		n++
		if long.Name == "" && (len(l.Name) > maxName || len(l.Value) > maxValue) {
			long = l
		}
	})
	switch {
	case lim.LabelsPerSeries > 0 && n > lim.LabelsPerSeries:
		db.stats.RejectedLimit.LabelsPerSeries.Add(1)
		return fmt.Errorf("%w: series has %d labels, more than limits.labels_per_series %d: %s",
			ErrLimitExceeded, n, lim.LabelsPerSeries, describeSeries(lset))
	case len(long.Name) > maxName:
		db.stats.RejectedLimit.LabelNameLength.Add(1)
		return fmt.Errorf("%w: label name %s is %d bytes long, more than limits.label_name_length %d: %s",
			ErrLimitExceeded, shorten(long.Name), len(long.Name), lim.LabelNameLength, describeSeries(lset))
	case len(long.Value) > maxValue:
		db.stats.RejectedLimit.LabelValueLength.Add(1)
		return fmt.Errorf("%w: value of label %s is %d bytes long, more than limits.label_value_length %d: %s",
			ErrLimitExceeded, shorten(long.Name), len(long.Value), lim.LabelValueLength, describeSeries(lset))
	}
	return nil
}

// noLimit maps a disabled (0) length limit to one nothing exceeds.
func noLimit(v int) int {
	if v <= 0 {
		return math.MaxInt
	}
	return v
}

// errActiveSeries is the refusal of a series new to memory when the head is full.
func (db *DB) errActiveSeries(lset labels.Labels) error {
	db.stats.RejectedLimit.ActiveSeries.Add(1)
	return fmt.Errorf("%w: the store holds %d active series, limits.active_series is %d; only series already active are appended: %s",
		ErrLimitExceeded, db.series.count(), db.opts.Limits.ActiveSeries, describeSeries(lset))
}

// Error messages show series cut to a readable size: a refused series may be huge, and the
// message travels back to the client in a response body.
const (
	maxDescribedValue  = 64  // bytes of one label name or value
	maxDescribedSeries = 512 // bytes of the whole series, about
)

// describeSeries formats lset like labels.Labels.String, with long names and values cut and
// the labels past maxDescribedSeries left out ("... and 12 more labels").
func describeSeries(lset labels.Labels) string {
	var b strings.Builder
	b.WriteByte('{')
	i, n := 0, lset.Len()
	lset.Range(func(l labels.Label) {
		if i < 0 {
			return
		}
		if b.Len() > maxDescribedSeries {
			fmt.Fprintf(&b, ", ... and %d more labels", n-i)
			i = -1
			return
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(shortenRaw(l.Name))
		b.WriteByte('=')
		b.WriteString(shorten(l.Value))
		i++
	})
	b.WriteByte('}')
	return b.String()
}

// shorten quotes s, cut to maxDescribedValue bytes with the full length said.
func shorten(s string) string {
	if len(s) <= maxDescribedValue {
		return strconv.Quote(s)
	}
	return strconv.Quote(strings.ToValidUTF8(s[:maxDescribedValue], "")) + fmt.Sprintf("...(%d bytes)", len(s))
}

// shortenRaw is shorten for label names, which read better unquoted when they are short.
func shortenRaw(s string) string {
	if len(s) <= maxDescribedValue {
		return s
	}
	return s[:maxDescribedValue] + fmt.Sprintf("...(%d bytes)", len(s))
}
