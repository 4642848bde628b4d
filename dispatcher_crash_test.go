package webhook

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noa-server/webhook/store"
	"github.com/noa-server/webhook/store/boltstore"
	"github.com/noa-server/webhook/store/pgstore"
	"github.com/noa-server/webhook/store/pgstore/pgstoretest"
)

// Settings shared by the crash test and its child process.
const (
	crashEvents  = 200
	crashWorkers = 4
	crashLease   = 3 * time.Second
	crashTenant  = "crash"
)

func crashConfig() *Config {
	return &Config{
		AllowedRanges: loopback,
		AllowAnyPort:  true,
		PollInterval:  20 * time.Millisecond,
		Workers:       crashWorkers,
		Timeout:       2 * time.Second,
		Lease:         crashLease,
	}
}

// openCrashStore opens the store the crash test's child and its
// successor share: the bbolt file at spec, or, for "pg:" + a schema name,
// that schema of the PostgreSQL test database.
func openCrashStore(spec string) (store.Store, error) {
	if schema, ok := strings.CutPrefix(spec, "pg:"); ok {
		return pgstore.Open(context.Background(), pgstoretest.URL(), pgstore.Options{Schema: schema})
	}
	return boltstore.Open(spec, nil)
}

// TestCrashChild is the child process of TestCrashRecovery: it opens the
// store the parent names (see openCrashStore), emits a burst, printing
// "ACK <id>" for every event Emit acknowledged, then starts delivering and
// runs until it is killed.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("runs only as the child of TestCrashRecovery")
	}
	st, err := openCrashStore(spec)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	d, err := New(st, crashConfig())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := range crashEvents {
		id := fmt.Sprintf("evt_crash_%04d", i)
		if _, err := d.Emit(context.Background(), Event{ID: id, Type: EventUserLogin, Tenant: crashTenant}); err != nil {
			fmt.Fprintln(out, "ERROR", err)
			out.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(out, "ACK", id)
		out.Flush()
	}
	if err := d.Start(context.Background()); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(2)
	}
	select {} // until SIGKILL
}

// TestCrashRecovery runs a dispatcher in a child process on a store, kills
// it with SIGKILL while attempts are in flight, starts another on the same
// store and checks that every acknowledged event reaches the receiver at
// least once, with duplicates only for the attempts in flight at the kill
// (claimed and not yet recorded).
// On bbolt the other dispatcher is the restarted process, on the same
// file. On PostgreSQL it is a replica sharing the database: the child's
// connections die with it, and its leases, claimed and committed, are
// taken over once they expire (crashLease, three seconds, which the test
// waits for).
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	t.Run("boltstore", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "crash.db")
		testCrashRecovery(t, path, func(url string) {
			st, err := boltstore.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			addWebhook(t, st, crashTenant, url)
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("pgstore", func(t *testing.T) {
		if pgstoretest.URL() == "" {
			t.Skip(pgstoretest.SkipMessage)
		}
		st := pgstoretest.Open(t, "webhook_crash_")
		testCrashRecovery(t, "pg:"+st.Schema(), func(url string) { addWebhook(t, st, crashTenant, url) })
	})
}

// testCrashRecovery is TestCrashRecovery on the store at spec (see
// openCrashStore), in which setup stores the receiver's webhook.
func testCrashRecovery(t *testing.T, spec string, setup func(url string)) {
	var (
		mu       sync.Mutex
		phase    = 1
		before   = map[string]int{} // deliveries received from the child
		after    = map[string]int{} // deliveries received after the restart
		trigger  = make(chan struct{})
		released = make(chan struct{})
		once     sync.Once
	)
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request, n int) {
		id := r.Header.Get(HeaderStandardID)
		mu.Lock()
		p := phase
		if p == 1 {
			before[id]++
		} else {
			after[id]++
		}
		total := len(before)
		mu.Unlock()
		if p == 1 && total >= crashEvents/4 {
			// Hold the child's attempts open: it dies with them in flight.
			once.Do(func() { close(trigger) })
			<-released
		}
	})

	setup(rc.URL)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+spec)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })

	acked := make(chan string, crashEvents)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		defer close(acked)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if id, ok := strings.CutPrefix(line, "ACK "); ok {
				acked <- id
			} else if strings.HasPrefix(line, "ERROR") {
				t.Errorf("child: %s", line)
			}
		}
	}()

	// Kill the child as soon as its attempts are held open: waiting longer
	// risks them timing out first on a loaded machine, which leaves them
	// pending for a retry 30 s away instead of in flight.
	var ackedIDs []string
	timeout := time.After(30 * time.Second)
	for triggered := false; !triggered; {
		select {
		case id, ok := <-acked:
			if !ok {
				t.Fatalf("the child exited early after %d acks", len(ackedIDs))
			}
			ackedIDs = append(ackedIDs, id)
		case <-trigger:
			triggered = true
		case <-timeout:
			t.Fatalf("child never got going: %d acks", len(ackedIDs))
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	<-scanDone
	_ = cmd.Wait()
	for id := range acked { // acks written before the kill
		ackedIDs = append(ackedIDs, id)
	}
	if len(ackedIDs) != crashEvents {
		t.Fatalf("%d events acknowledged before the kill, want all %d", len(ackedIDs), crashEvents)
	}
	mu.Lock()
	phase = 2
	mu.Unlock()
	close(released)

	// Restart on the same store.
	st, err := openCrashStore(spec)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close()
	d := startDispatcher(t, st, crashConfig())
	waitFor(t, "every acknowledged event to arrive and every delivery to succeed", func() bool {
		mu.Lock()
		for _, id := range ackedIDs {
			if before[id]+after[id] == 0 {
				mu.Unlock()
				return false
			}
		}
		mu.Unlock()
		ds, _, err := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: crashTenant, Status: store.StatusPending, Limit: 1})
		return err == nil && len(ds) == 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	dups := 0
	for id, n := range after {
		if before[id] > 0 {
			dups++
		}
		if n > 1 {
			t.Errorf("%s delivered %d times after the restart", id, n)
		}
	}
	for id, n := range before {
		if n > 1 {
			t.Errorf("%s delivered %d times before the kill", id, n)
		}
	}
	// An attempt is in flight from its claim until its record: one that
	// was answered but not yet recorded at the kill is made again too.
	// maxInflight bounds them.
	if most := maxInflight(crashWorkers); dups > most {
		t.Errorf("%d events delivered both before and after the kill; at most %d attempts were in flight", dups, most)
	}
	ds, _, err := st.ListDeliveries(context.Background(), store.ListDeliveriesParams{Tenant: crashTenant, Limit: store.MaxPageLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) < len(ackedIDs) {
		t.Errorf("%d deliveries stored for %d acknowledged events", len(ds), len(ackedIDs))
	}
	for _, del := range ds {
		if del.Status != store.StatusSuccess {
			t.Errorf("delivery of %s is %s after recovery", del.EventID, del.Status)
		}
	}
	if dups == 0 {
		t.Error("no attempt was in flight at the kill: the test did not test a crash mid-delivery")
	}
	t.Logf("%d events acknowledged, %d received before the kill, %d after the restart, %d duplicates",
		len(ackedIDs), len(before), len(after), dups)
}
