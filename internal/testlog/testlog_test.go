package testlog_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/noa-server/webhook/internal/testlog"
)

// Concurrent writers each land whole, and a reader may read meanwhile
// (the race detector checks the locking).
func TestBufferConcurrent(t *testing.T) {
	var b testlog.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				fmt.Fprintf(&b, "w%d-%d\n", i, j)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 400 {
		t.Fatalf("%d lines, want 400", n)
	}
	if !strings.Contains(b.String(), "w7-49\n") {
		t.Fatal("a write is missing")
	}
}
