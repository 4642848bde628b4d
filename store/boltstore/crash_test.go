package boltstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/storetest"
)

// crashWriterEnv names the file TestCrashWriter writes to, and its round.
const crashWriterEnv = "BOLTSTORE_CRASH_WRITER"

const crashTenant = "tenant-crash"

// crashPurged reports whether the crash writer lets Purge remove the
// delivery of event number n: it completes every fourth one as of
// storetest.Base, which the purger's cut-off is after.
func crashPurged(n int) bool { return n%4 == 0 }

// TestCrashWriter is the child process of TestCrashMidCommit: it keeps
// Enqueue, Claim, Complete and Purge committing at once on the file the
// parent names, with fsync on, and prints "ACK <n> <delivery id>" once
// Enqueue of event n has returned, until it is killed.
func TestCrashWriter(t *testing.T) {
	spec := os.Getenv(crashWriterEnv)
	if spec == "" {
		t.Skip("runs only as the child of TestCrashMidCommit")
	}
	round, path, _ := strings.Cut(spec, ":")
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	s, err := boltstore.Open(path, nil)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	ws, _, err := s.ListWebhooks(ctx, store.ListWebhooksParams{Tenant: crashTenant, Limit: 1})
	if err != nil || len(ws) != 1 {
		fail(fmt.Errorf("the parent's webhook: %v (%d found)", err, len(ws)))
	}
	w := ws[0]
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	go func() { // enqueue
		for n := 0; ; n += 4 {
			var ds []*store.Delivery
			for i := range 4 {
				d := storetest.NewDelivery(w, "user.login")
				d.EventID = fmt.Sprintf("evt_r%s_%06d", round, n+i)
				d.NextAttemptAt = time.Now()
				ds = append(ds, d)
			}
			ids, err := s.Enqueue(ctx, ds)
			if err != nil {
				fail(err)
			}
			mu.Lock()
			for i, id := range ids {
				fmt.Fprintln(out, "ACK", n+i, id)
			}
			out.Flush()
			mu.Unlock()
		}
	}()
	for range 2 { // claim and complete: success, a retry, or an old success
		go func() {
			owner := storetest.NewID("owner_")
			for {
				ds, err := s.Claim(ctx, store.ClaimParams{Now: time.Now(), Limit: 8, Lease: time.Minute, Owner: owner})
				if err != nil {
					fail(err)
				}
				for _, d := range ds {
					_, num, _ := strings.Cut(d.EventID[len("evt_r"):], "_")
					n, _ := strconv.Atoi(num)
					p := store.CompleteParams{DeliveryID: d.ID, Owner: owner, Status: store.StatusSuccess, Now: time.Now(),
						Attempt: storetest.NewAttempt(d.ID, d.Attempts+1, 200)}
					switch {
					case crashPurged(n):
						p.Now = storetest.Base
					case n%4 == 1 && d.Attempts == 0:
						p.Status, p.NextAttemptAt = store.StatusPending, time.Now()
						p.Attempt = storetest.NewAttempt(d.ID, 1, 503)
					}
					if err := s.Complete(ctx, p); err != nil {
						fail(err)
					}
				}
			}
		}()
	}
	for { // purge what was completed as of Base
		if _, err := s.Purge(ctx, store.PurgeParams{Before: storetest.Base.Add(time.Second), Limit: 16}); err != nil {
			fail(err)
		}
	}
}

// TestCrashMidCommit kills (SIGKILL) a process in the middle of its
// commits, a few times over on the same file, and checks after each kill
// that the file opens, passes bbolt's page check, and that every index
// agrees with the records; that every delivery whose Enqueue returned is
// there (but those the writer let Purge remove); and that the store goes
// on working.
func TestCrashMidCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "crash.db")
	s, err := boltstore.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := storetest.NewWebhook(crashTenant)
	if err := s.CreateWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var completed int64 // deliveries stored as succeeded: Complete committed
	// Each round kills the writer after a different number of acks, so
	// that the kills land at different points of a commit.
	for round, acks := range []int{40, 97, 211} {
		acked := crashWriter(t, path, round, acks)
		if err := boltstore.CheckFile(path); err != nil {
			t.Fatalf("round %d: after the kill: %v", round, err)
		}
		s, err := boltstore.Open(path, nil)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		for n, id := range acked {
			_, err := s.GetDelivery(ctx, id)
			if err != nil && !crashPurged(n) {
				t.Errorf("round %d: delivery %s of event %d, acknowledged before the kill: %v", round, id, n, err)
			}
		}
		c, err := s.CountDeliveries(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		completed = max(completed, c.Success)
		t.Logf("round %d: %d acknowledged, counts %+v", round, len(acked), c)
		if err := storetest.CheckInvariants(ctx, s, crashTenant); err != nil {
			t.Errorf("round %d: %v", round, err)
		}
		d := storetest.NewDelivery(w, "user.login")
		if _, err := s.Enqueue(ctx, []*store.Delivery{d}); err != nil {
			t.Errorf("round %d: Enqueue after the kill: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if completed == 0 {
		t.Error("the writer completed nothing: the kills landed only among enqueues")
	}
}

// crashWriter runs TestCrashWriter on path, kills it once it has
// acknowledged at least acks deliveries, and returns the delivery ids it
// acknowledged by event number.
func crashWriter(t *testing.T, path string, round, acks int) map[int]string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d:%s", crashWriterEnv, round, path))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	acked := make(map[int]string)
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "ACK "); ok {
			num, id, _ := strings.Cut(rest, " ")
			n, err := strconv.Atoi(num)
			if err != nil {
				t.Fatalf("child: %q", line)
			}
			acked[n] = id
		} else if strings.HasPrefix(line, "ERROR") {
			t.Errorf("child: %s", line)
		}
		if len(acked) >= acks && !killed {
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
			killed = true // what it wrote before dying is still read
		}
	}
	_ = cmd.Wait()
	if !killed {
		t.Fatalf("round %d: the writer exited after %d acks", round, len(acked))
	}
	return acked
}
