package hosts_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/migrated/migrated/agent/move"
)

type ctxT = context.Context

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func parseReport(tb testing.TB, out []byte) *move.Report {
	tb.Helper()
	var r move.Report
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("move --json: %v: %s", err, out)
	}
	return &r
}
