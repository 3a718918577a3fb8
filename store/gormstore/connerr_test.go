package gormstore

import (
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

// TestIsConnErr: a connection the server closed under a query, which the driver reads
// as an unexpected end of file in the middle of a message, is a connection failure
// (store.ErrUnavailable, a 503 with Retry-After), whether or not a network error
// wraps it; a refused query is not.
func TestIsConnErr(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("read message: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{fmt.Errorf("query: %w", sql.ErrConnDone), true},
		{&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, true},
		{errors.New("sql: database is closed"), true},
		{errors.New("no such table: users"), false},
	} {
		if got := isConnErr(tc.err); got != tc.want {
			t.Errorf("isConnErr(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
