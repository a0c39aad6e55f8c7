//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package probe

import "os"

// lockFile does nothing where flock(2) is missing: two probes on one cache
// are not caught there.
func lockFile(f *os.File) (busy bool, err error) { return false, nil }

func unlockFile(f *os.File) error { return nil }
