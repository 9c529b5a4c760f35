package nshost_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/migrated/migrated/e2e/nshost"
)

// The shape of the demo: two hosts, an agent in each, a workload started in
// host a and moved to host b by the CLI run inside host a. The agent's flags
// here are placeholders: they are the agent's business, not nshost's.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := nshost.New(ctx, nshost.Config{Hosts: 2, Dir: "/tmp/migrated-demo"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	exe, _ := os.Executable() // the migrated binary: the hosts share the file system
	const sock = "/run/migrated/migrated.sock"
	agents, err := c.StartDaemons(ctx, func(h *nshost.Host) nshost.DaemonSpec {
		return nshost.DaemonSpec{
			Name:   "agent",
			Path:   exe,
			Args:   []string{"agent", "--bind", h.Addr.String(), "--join", c.Hosts[0].Addr.String()},
			Socket: sock, // in the host's own /run
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range agents {
		defer a.Stop(5 * time.Second)
	}

	a, b := c.Hosts[0], c.Hosts[1]
	work := a.Command(ctx, "python3", "-c", "import time\nwhile True: time.sleep(1)")
	if err := work.Start(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("workload: pid %d in host a (%d on the machine)\n", work.Process.PID, work.Process.RootPID)

	report, err := a.Command(ctx, exe, "move", strconv.Itoa(work.Process.PID), b.Addr.String()).Output()
	if err != nil {
		log.Fatalf("move: %v (agent logs: %s, %s)", err, agents[0].Log, agents[1].Log)
	}
	os.Stdout.Write(report)
	if rp, err := b.RootPID(work.Process.PID); err == nil {
		fmt.Printf("now pid %d in host b (%d on the machine)\n", work.Process.PID, rp)
	}
}
