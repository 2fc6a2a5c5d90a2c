package tsdb

import (
	"maps"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// encodeMetadata stores type, unit and help as three length-prefixed strings.
func encodeMetadata(m metadata.Metadata) []byte {
	b := putString(nil, string(m.Type))
	b = putString(b, m.Unit)
	return putString(b, m.Help)
}

func decodeMetadata(b []byte) (metadata.Metadata, error) {
	typ, rest, err := getString(b)
	if err != nil {
		return metadata.Metadata{}, err
	}
	unit, rest, err := getString(rest)
	if err != nil {
		return metadata.Metadata{}, err
	}
	help, _, err := getString(rest)
	if err != nil {
		return metadata.Metadata{}, err
	}
	return metadata.Metadata{Type: model.MetricType(typ), Unit: unit, Help: help}, nil
}

func (db *DB) loadMetadata() error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{famMetadata}, UpperBound: []byte{famMetadata + 1}})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		m, err := decodeMetadata(it.Value())
		if err != nil {
			_ = it.Close()
			return err
		}
		db.meta[string(it.Key()[1:])] = m
	}
	return it.Close()
}

// publishMetadata makes committed metadata visible. Caller holds writeMu.
func (db *DB) publishMetadata(m map[string]metadata.Metadata) {
	if len(m) == 0 {
		return
	}
	db.metaMu.Lock()
	maps.Copy(db.meta, m)
	db.metaMu.Unlock()
}

// Metadata returns the metadata of one metric family, or of all when metric is empty.
func (db *DB) Metadata(metric string) map[string]metadata.Metadata {
	db.metaMu.RLock()
	defer db.metaMu.RUnlock()
	out := map[string]metadata.Metadata{}
	if metric != "" {
		if m, ok := db.meta[metric]; ok {
			out[metric] = m
		}
		return out
	}
	maps.Copy(out, db.meta)
	return out
}
