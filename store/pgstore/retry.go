package pgstore

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// PostgreSQL error codes of a statement aborted to resolve a conflict with
// another transaction. The aborted work was rolled back entirely, so it is
// safe to run again, and PostgreSQL's documentation asks applications to
// do so.
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
)

// Bounds of retry: how many times a call runs, and the wait before its
// second run (doubled before each later one, and randomised so that the
// transactions of a deadlock do not meet again in step).
const (
	maxTries     = 5
	firstBackoff = 10 * time.Millisecond
)

// retryable reports whether err is PostgreSQL aborting a statement to
// break a deadlock or a serialization conflict.
func retryable(err error) bool {
	switch pgCode(err) {
	case codeSerializationFailure, codeDeadlockDetected:
		return true
	}
	return false
}

// retry runs fn, and runs it again while it fails with a retryable error,
// at most maxTries times in all, waiting a little longer before each run,
// and not once ctx has ended. It returns fn's last error. fn must start
// afresh each time: a statement or a transaction of its own.
//
// Every call that takes row locks runs under retry: PostgreSQL may choose
// any of them to break a lock cycle, including one with a transaction
// outside the store, and a Complete lost that way would lose the record
// of an attempt that reached its endpoint.
func retry(ctx context.Context, fn func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.Multiplier, b.MaxElapsedTime = firstBackoff, 2, 0
	var err error // fn's last: Retry returns ctx's error when ctx ends
	_ = backoff.Retry(func() error {
		if err = fn(); err != nil && !retryable(err) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(backoff.WithMaxRetries(b, maxTries-1), ctx))
	return err
}
