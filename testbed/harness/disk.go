package harness

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// DirBytes returns the total size of the regular files under dir (apparent sizes, what
// `du --apparent-size` counts). A server deletes files while it runs (Pebble's obsolete tables,
// Prometheus's compacted blocks): a file listed but gone when it is measured counts as nothing.
func DirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path != dir {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}
