package soak

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// settings of a soak, from the environment (see testbed/README.md).
type settings struct {
	duration   time.Duration // SOAK_DURATION, default 5m
	eventEvery time.Duration // SOAK_EVENT_EVERY, default 30s
	diskFull   bool          // SOAK_DISKFULL, default 1 (0 leaves the disk-full events out)
	hold       time.Duration // SOAK_DISKFULL_HOLD, default 10s: how long the disk is kept full
	tmpfsSize  string        // SOAK_TMPFS_SIZE, default 256m: the tmpfs the data directory is on
	pace       time.Duration // SOAK_PACE, default 250ms: one round per stream at most this often
	rwSeries   int           // SOAK_RW_SERIES, default 1000 (2 remote write streams)
	otlpSeries int           // SOAK_OTLP_SERIES, default 50 per metric (2 metrics, 2 OTLP streams)
	out        string        // SOAK_OUT: the summary is also written there when set
}

func loadSettings(t *testing.T) settings {
	t.Helper()
	return settings{
		duration:   envDuration(t, "SOAK_DURATION", 5*time.Minute),
		eventEvery: envDuration(t, "SOAK_EVENT_EVERY", 30*time.Second),
		diskFull:   envInt(t, "SOAK_DISKFULL", 1) != 0,
		hold:       envDuration(t, "SOAK_DISKFULL_HOLD", 10*time.Second),
		tmpfsSize:  envString("SOAK_TMPFS_SIZE", "256m"),
		pace:       envDuration(t, "SOAK_PACE", 250*time.Millisecond),
		rwSeries:   envInt(t, "SOAK_RW_SERIES", 1000),
		otlpSeries: envInt(t, "SOAK_OTLP_SERIES", 50),
		out:        os.Getenv("SOAK_OUT"),
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number >= 0", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive Go duration (90s, 5m)", name, v)
	}
	return d
}
