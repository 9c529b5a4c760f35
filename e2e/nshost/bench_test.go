package nshost_test

import (
	"context"
	"testing"
	"time"

	"github.com/migrated/migrated/e2e/nshost"
)

// What a test pays for its hosts: building and closing a cluster, and one
// command run to completion inside a host.
func BenchmarkCluster(b *testing.B) {
	if reason := nshost.Unavailable(); reason != "" {
		b.Skip(reason)
	}
	for _, n := range []int{2, 3} {
		b.Run(map[int]string{2: "2 hosts", 3: "3 hosts"}[n], func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				c, err := nshost.New(ctx, nshost.Config{Hosts: n})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCommand(b *testing.B) {
	c := nshost.NewForTest(b, 2)
	h := c.Hosts[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for b.Loop() {
		if err := h.Command(ctx, "/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
