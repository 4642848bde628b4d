// Package boltfile checks a bbolt file before bbolt opens it: the store
// and the receiver's idempotency store both keep their data in one.
package boltfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"time"

	berrors "go.etcd.io/bbolt/errors"
)

// bbolt's file header, as far as CheckSize reads it: each of the first two
// pages holds a page header (16 bytes) and then a meta record.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSize       = 64 // up to and with the checksum
	metaSummed     = 56 // the bytes the checksum covers
)

// CheckSize refuses a path that is not a regular file, and a bbolt file
// shorter than the pages its newest valid meta page says it holds.
//
// bbolt opens whatever the path names, and takes a size of zero for a new
// file: it writes its first pages into a device (a disk's first 16 KiB, a
// symlink to /dev/null) and then fails, and blocks forever opening a FIFO.
// bbolt maps the file and reads the pages its meta page counts without
// checking, so a truncated file (a copy cut short, a full disk) crashes the
// process inside bolt.Open or, later, a read (etcd-io/bbolt issue 105): an
// error is better. A missing file, or one whose header is not readable, is
// left to bolt.Open, which creates the one and reports the other.
func CheckSize(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return nil // bolt.Open says why
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file but %s", path, kind(fi.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil // bolt.Open says why
	}
	defer f.Close()
	m0, ok0 := readMeta(f, 0)
	second := int64(4096)
	if ok0 {
		second = int64(m0.pageSize)
	}
	m1, ok1 := readMeta(f, second)
	var m meta
	switch {
	case ok0 && ok1:
		m = m0
		if m1.txid > m0.txid {
			m = m1
		}
	case ok0:
		m = m0
	case ok1:
		m = m1
	default:
		return nil
	}
	if need := m.pages * uint64(m.pageSize); uint64(fi.Size()) < need {
		return fmt.Errorf("%s: the file is %d bytes but its header counts %d pages of %d bytes: it is truncated",
			path, fi.Size(), m.pages, m.pageSize)
	}
	return nil
}

// kind names the type of a file that is not a regular one.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "of mode " + m.String()
}

// meta is what CheckSize needs of a bbolt meta page.
type meta struct {
	pageSize    uint32
	pages, txid uint64
}

// readMeta reads the meta record of the page at off; ok is false unless
// its magic, version and checksum are right.
func readMeta(r io.ReaderAt, off int64) (meta, bool) {
	var b [pageHeaderSize + metaSize]byte
	if _, err := r.ReadAt(b[:], off); err != nil {
		return meta{}, false
	}
	rec := b[pageHeaderSize:]
	e := binary.NativeEndian // bbolt writes its structs as they lie in memory
	h := fnv.New64a()
	h.Write(rec[:metaSummed])
	if e.Uint32(rec[0:]) != boltMagic || e.Uint32(rec[4:]) != boltVersion || h.Sum64() != e.Uint64(rec[metaSummed:]) {
		return meta{}, false
	}
	m := meta{pageSize: e.Uint32(rec[8:]), pages: e.Uint64(rec[40:]), txid: e.Uint64(rec[48:])}
	if m.pageSize < 512 || m.pageSize > 1<<20 {
		return meta{}, false
	}
	return m, true
}

// Locked rewords the error bolt.Open gives after waiting for the file lock
// (a bare "timeout") so that it says what held it; errors.Is still finds
// bbolt's ErrTimeout. Other errors are returned as they are.
func Locked(err error, waited time.Duration) error {
	if errors.Is(err, berrors.ErrTimeout) {
		return fmt.Errorf("the file is in use by another process (bbolt lets one open it at a time; waited %v): %w", waited, err)
	}
	return err
}
