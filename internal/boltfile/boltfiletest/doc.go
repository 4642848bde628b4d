// Package boltfiletest holds the checks that the two bbolt stores (the
// sender's boltstore and the receiver's idempotency store) share in their
// tests.
package boltfiletest
