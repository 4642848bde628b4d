// Package storediff holds a differential test of the stores that ship with
// the module: it applies one seeded random sequence of calls to memstore,
// boltstore and (when WEBHOOK_TEST_POSTGRES_URL is set) pgstore at once and
// fails at the first call whose results differ, beyond what the
// store.Store contract leaves open. It has no code of its own.
package storediff
