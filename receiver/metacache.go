package receiver

import (
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/metadata"
)

// metadataCache remembers remote write 1.0 metadata by metric family name, so that it can be
// attached to series arriving in later requests. When full it starts over (senders resend
// metadata every minute by default).
type metadataCache struct {
	mu       sync.RWMutex
	limit    int
	families map[string]metadata.Metadata // guarded by mu
}

func newMetadataCache(limit int) *metadataCache {
	return &metadataCache{limit: limit, families: map[string]metadata.Metadata{}}
}

func (c *metadataCache) put(family string, m metadata.Metadata) {
	if c.limit == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.families[family]; !ok && len(c.families) >= c.limit {
		clear(c.families)
	}
	c.families[family] = m
}

// lookup finds the metadata of a series name: its own family, or the family without a classic
// suffix (foo for foo_bucket, foo_total, ...).
func (c *metadataCache) lookup(name string) (family string, m metadata.Metadata, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.families) == 0 {
		return "", metadata.Metadata{}, false
	}
	if m, ok := c.families[name]; ok {
		return name, m, true
	}
	for _, suf := range classicSuffixes {
		if f, cut := strings.CutSuffix(name, suf); cut && f != "" {
			if m, ok := c.families[f]; ok {
				return f, m, true
			}
		}
	}
	return "", metadata.Metadata{}, false
}
