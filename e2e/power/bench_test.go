package power

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkGuestTCP measures TCP throughput between the two guests of a
// ppc64le pair over the QEMU stream link (what a move's pages cross).
// It boots the pair once; b.N counts MiB sent.
//
//	MIGRATED_E2E_POWER=1 go test -run XXX -bench GuestTCP -benchtime 16x ./e2e/power/
func BenchmarkGuestTCP(b *testing.B) {
	if os.Getenv("MIGRATED_E2E_POWER") != "1" || os.Geteuid() != 0 {
		b.Skip("boots QEMU POWER guests: set MIGRATED_E2E_POWER=1 and run as root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	pair, err := BootPair(ctx, PairConfig{Arch: ArchPPC64LE})
	if err != nil {
		b.Fatal(err)
	}
	defer pair.Close()
	n := b.N << 20
	b.SetBytes(1 << 20)
	b.ResetTimer()
	var wg sync.WaitGroup
	var serveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, serveErr = pair.Run(ctx, 0, "@tcp-serve", "7001")
	}()
	out, err := pair.Run(ctx, 1, "@tcp-send", pair.Guests[0].Addr.String()+":7001", fmt.Sprint(n))
	wg.Wait()
	b.StopTimer()
	if err != nil || serveErr != nil {
		b.Fatalf("send: %v; serve: %v", err, serveErr)
	}
	b.Log(strings.TrimSpace(string(out)))
	for i := range pair.Guests {
		snmp, err := pair.Guests[i].ReadFile(ctx, "/proc/net/snmp")
		if err == nil {
			b.Logf("g%d TCP counters:\n%s", i, tcpLines(string(snmp)))
		}
	}
}

func tcpLines(snmp string) string {
	var keep []string
	for _, l := range strings.Split(snmp, "\n") {
		if strings.HasPrefix(l, "Tcp:") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
