//go:build unix

package webhook

import "syscall"

// newIdlePeek returns a function for syscall.RawConn.Read that sets
// *waiting to whether anything waits to be read on the socket: bytes, the
// end of the stream (the peer closed its side) or an error (a reset). It
// neither blocks (Go's sockets are non-blocking) nor consumes what it sees.
func newIdlePeek(waiting *bool) func(fd uintptr) bool {
	b := make([]byte, 1)
	return func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK)
		*waiting = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
		return true
	}
}
