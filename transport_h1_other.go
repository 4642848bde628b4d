//go:build !unix

package webhook

// newIdlePeek returns nil where the socket cannot be peeked at without
// blocking: an idle connection is then taken to have nothing waiting.
func newIdlePeek(*bool) func(fd uintptr) bool { return nil }
