//go:build !linux

package storage

// releaseExecutablePages does nothing outside Linux (exepages.go).
func releaseExecutablePages() (int64, error) { return 0, nil }
