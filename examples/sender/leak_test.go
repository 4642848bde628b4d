package main

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives its test: every
// dispatcher the tests start is stopped, every server closed. With
// SENDER_MAIN=1 the test binary is the program instead, for the tests that
// need a process of their own.
func TestMain(m *testing.M) {
	if os.Getenv("SENDER_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	http.DefaultClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
