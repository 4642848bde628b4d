//go:build !unix

package boltstore_test

import (
	"testing"
	"time"
)

// cpuTime returns 0: the process's CPU time is read on Unix only.
func cpuTime(*testing.B) time.Duration { return 0 }
