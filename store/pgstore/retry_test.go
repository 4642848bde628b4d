package pgstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestRetry checks which errors retry runs a call again for, and how often:
// a deadlock or a serialization failure, however wrapped, up to maxTries
// runs; no other error; and no more runs once ctx has ended.
func TestRetry(t *testing.T) {
	deadlock := fmt.Errorf("pgstore: %w", &pgconn.PgError{Code: codeDeadlockDetected})
	serialization := &pgconn.PgError{Code: codeSerializationFailure}
	unique := &pgconn.PgError{Code: codeUniqueViolation}
	other := errors.New("connection reset")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		errs []error // what the runs return, in turn; nil once exhausted
		runs int
		err  error
	}{
		{"success", context.Background(), nil, 1, nil},
		{"deadlock then success", context.Background(), []error{deadlock}, 2, nil},
		{"serialization failures then success", context.Background(), []error{serialization, serialization}, 3, nil},
		{"always deadlocked", context.Background(), []error{deadlock, deadlock, deadlock, deadlock, deadlock, deadlock}, maxTries, deadlock},
		{"unique violation", context.Background(), []error{unique}, 1, unique},
		{"other error", context.Background(), []error{other}, 1, other},
		{"deadlock after ctx ended", canceled, []error{deadlock}, 1, deadlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := 0
			err := retry(tt.ctx, func() error {
				runs++
				if runs <= len(tt.errs) {
					return tt.errs[runs-1]
				}
				return nil
			})
			if runs != tt.runs || err != tt.err {
				t.Errorf("retry ran %d times and returned %v; want %d runs and %v", runs, err, tt.runs, tt.err)
			}
		})
	}
}
