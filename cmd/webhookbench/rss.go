package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// peakRSS returns this process's peak resident set size in bytes (VmHWM of
// /proc/self/status), or 0 where /proc is not available.
func peakRSS() int64 { return procStatus("VmHWM:") }

// currentRSS returns this process's resident set size in bytes (VmRSS).
func currentRSS() int64 { return procStatus("VmRSS:") }

func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(field)) {
			continue
		}
		f := bytes.Fields(line[len(field):])
		if len(f) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux 4.0 and later), so
// a phase of a scenario can report its own peak. It reports whether it did.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
