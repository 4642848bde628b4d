package boltstore

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/noa-server/webhook/store"
)

// checkFile opens the closed store file at path read-only and returns the
// first inconsistency checkTx finds in it, or bbolt's own page check's.
func checkFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bbolt check: %w", errors.Join(errs...))
		}
		return checkTx(tx)
	})
}

// checkTx checks that every index of the layout in the package
// documentation agrees with the records: each record has exactly the index
// entries its state asks for, each index entry names a record that asks
// for it, attempts run 1..Attempts, and the counters equal a tally of the
// records. Where the store tests look through the public interface
// (storetest.CheckInvariants), this looks at the file itself, so it also
// finds an entry that no query reads (a stray due or dedup key).
func checkTx(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("bucket %s is missing", name)
		}
	}
	// want holds, per index bucket, the entries the records ask for.
	want := make(map[string]map[string]string)
	for _, name := range [][]byte{bWebhookTenant, bDelTenant, bDelWebhook, bDedup, bDue, bHeld, bLeased, bFinished, bAttempts, bCounts} {
		want[string(name)] = make(map[string]string)
	}
	tenants := make(map[string]string) // webhook id -> tenant
	tally := make(map[string]*store.Counts)
	err := tx.Bucket(bWebhooks).ForEach(func(k, v []byte) error {
		w, err := decodeWebhook(v)
		if err != nil {
			return fmt.Errorf("webhook %q: %w", k, err)
		}
		if w.ID != string(k) {
			return fmt.Errorf("webhook record %q holds id %q", k, w.ID)
		}
		tenants[w.ID] = w.Tenant
		tally[w.ID] = new(store.Counts)
		want[string(bWebhookTenant)][string(pairKey(w.Tenant, w.ID))] = ""
		return nil
	})
	if err != nil {
		return err
	}
	err = tx.Bucket(bDeliveries).ForEach(func(k, v []byte) error {
		d, err := decodeDelivery(v)
		if err != nil {
			return fmt.Errorf("delivery %q: %w", k, err)
		}
		if d.ID != string(k) {
			return fmt.Errorf("delivery record %q holds id %q", k, d.ID)
		}
		tn, ok := tenants[d.WebhookID]
		if !ok {
			return fmt.Errorf("delivery %s names webhook %s, which is not stored", d.ID, d.WebhookID)
		}
		if tn != d.Tenant {
			return fmt.Errorf("delivery %s has tenant %q, its webhook %q", d.ID, d.Tenant, tn)
		}
		addCount(tally[d.WebhookID], d.Status, 1)
		want[string(bDelTenant)][string(pairKey(d.Tenant, d.ID))] = ""
		want[string(bDelWebhook)][string(pairKey(d.WebhookID, d.ID))] = ""
		dk := string(pairKey(d.EventID, d.WebhookID))
		if other, dup := want[string(bDedup)][dk]; dup {
			return fmt.Errorf("deliveries %s and %s share event %s and webhook %s", other, d.ID, d.EventID, d.WebhookID)
		}
		want[string(bDedup)][dk] = d.ID
		for n := 1; n <= d.Attempts; n++ {
			want[string(bAttempts)][string(attemptKey(d.ID, n))] = ""
		}
		// Leases are the Store's, in memory: the leased index stays empty
		// (no record asks for an entry). A pending record written by an
		// earlier release may still hold a lease, which nothing reads.
		if d.Status.Finished() {
			if d.LeaseOwner != "" || !d.LeaseExpiresAt.IsZero() {
				return fmt.Errorf("delivery %s is %s with a lease", d.ID, d.Status)
			}
			want[string(bFinished)][string(timeKey(d.UpdatedAt, d.ID))] = ""
			return nil
		}
		// A pending delivery is in exactly one of due and due_held; which
		// one is the store's choice, so the entry it has is checked here,
		// and the entries left over in the index walks below.
		dueKey := timeKey(d.NextAttemptAt, d.ID)
		heldKey := appendHeldKey(nil, []byte(d.WebhookID), dueKey)
		places := 0
		if v := tx.Bucket(bDue).Get(dueKey); v != nil {
			if string(v) != d.WebhookID {
				return fmt.Errorf("due entry of %s names webhook %q", d.ID, v)
			}
			want[string(bDue)][string(dueKey)] = d.WebhookID
			places++
		}
		if tx.Bucket(bHeld).Get(heldKey) != nil {
			want[string(bHeld)][string(heldKey)] = ""
			places++
		}
		if places != 1 {
			return fmt.Errorf("pending delivery %s is in %d of due and due_held, want 1", d.ID, places)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for id, c := range tally {
		want[string(bCounts)][id] = string(encodeCounts(*c))
	}
	for name, entries := range want {
		got := 0
		err := tx.Bucket([]byte(name)).ForEach(func(k, v []byte) error {
			got++
			w, ok := entries[string(k)]
			switch {
			case !ok:
				return fmt.Errorf("index %s holds %x, which no record asks for", name, k)
			case name == string(bAttempts):
				return nil // the attempt's record: checked by decoding below
			case w != string(v):
				return fmt.Errorf("index %s: %x is %x, want %x", name, k, v, w)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if got != len(entries) {
			return fmt.Errorf("index %s holds %d entries, the records ask for %d", name, got, len(entries))
		}
	}
	return nil
}

// CheckFile is checkFile for the tests of package boltstore_test.
var CheckFile = checkFile
