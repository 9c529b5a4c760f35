// Package nshost builds "hosts" on one Linux machine for end-to-end tests and
// the demo: each host is its own network, PID, mount, UTS and IPC namespace,
// so a process restored in a host keeps its PIDs exactly as on a real second
// machine, and agents in different hosts cannot see each other's processes.
//
// # Layout
//
//	root namespaces (the harness: a test or the demo command)
//	  |
//	  +-- host "a": init (PID 1 of its PID namespace), netns nshost-<run>-a
//	  |     /proc   fresh procfs of the host's PID namespace
//	  |     /run    private tmpfs (so /run/migrated/migrated.sock is per host)
//	  |     /dev/shm private tmpfs
//	  |     /etc/hosts  names every host: "b" is 198.18.0.2
//	  |     to-b    veth, 198.18.0.1/32 peer 198.18.0.2 ---+
//	  |     to-c    veth, 198.18.0.1/32 peer 198.18.0.3 -+ |
//	  +-- host "b": ...                                  | |
//	  +-- host "c": ...                                  | |
//
// Hosts are joined by a full mesh of veth pairs, one pair per couple of
// hosts, so that [Cluster.LinkDown] cuts exactly one link. Each host has one
// address in the RFC 2544 benchmark range 198.18.0.0/15 (host i has
// 198.18.0.i+1), configured as a point-to-point address on each of its links.
// There is no default route: nothing is ever routed out of the machine.
// [Cluster.Partition] instead drops the link's packets silently while both
// ends stay up. Host i (from 0) hands out PIDs from (i+1)*pid_max/9 on, so that,
// as between real machines, a task moved to another host almost always finds
// its PIDs free there ([Cmd.WantPID] takes one on purpose).
// Everything else (the rest of the file system, the cgroup tree) is shared
// with the machine, so files in a test's temporary directory are visible in
// every host. Each host also has a work directory ([Host.Dir]) that commands
// get as TMPDIR. The links have no IPv6 address, so their counters
// ([Cluster.Link]) count only what the hosts' programs send.
//
// # The host init
//
// The init of each host is the running executable itself, started again
// through /proc/self/exe with the environment variable NSHOST_INIT set: this
// package's init function notices it and turns the process into the host
// init before main runs. Any binary that imports nshost (a test binary, the
// migrated command) can therefore be a host init; nothing has to be built.
// The init mounts the private file systems, reaps every child (it is PID 1),
// and starts commands on request: the harness sends the argument vector,
// environment and standard file descriptors over a unix SOCK_SEQPACKET
// socket, the init forks and executes the program and answers with a pidfd,
// and later with the wait status. The init dies when the harness dies (it
// watches a pipe whose only writer is the harness), and the kernel then kills
// every process of the host.
//
// # Use
//
//	c := nshost.NewForTest(t, 2) // or New(ctx, Config{Hosts: 2}) and Close
//	a, b := c.Hosts[0], c.Hosts[1]
//	agent, err := a.StartDaemon(ctx, nshost.DaemonSpec{
//		Name: "agent", Path: bin, Args: []string{"agent", "--bind", a.Addr.String()},
//		Socket: "/run/migrated/migrated.sock", // waits until it accepts
//	})
//	w := a.Command(ctx, "python3", "workload.py") // like exec.Cmd
//	err = w.Start()  // w.Process.PID inside a, w.Process.RootPID on the machine
//	out, err := a.Command(ctx, bin, "move", strconv.Itoa(w.Process.PID), b.Addr.String()).Output()
//	rp, err := b.RootPID(w.Process.PID) // the moved task, same PID in b
//	c.LinkDown(a, b); c.LinkUp(a, b)     // or Partition / Heal; b.Kill()
//
// # What it must not know
//
// nshost knows nothing of migrated: it runs programs, it does not know
// agents, moves or images. Requirements: root (CAP_SYS_ADMIN, CAP_NET_ADMIN),
// the ip command (Debian package iproute2), a kernel with pidfds (5.3+).
package nshost
