package rebalance

import (
	"time"

	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

// View is what the policy sees of the cluster at one instant.
type View struct {
	// Now is the time of the view; cooldowns and backoffs are measured
	// against it. The policy never reads a clock.
	Now   time.Time `json:"now"`
	Nodes []Node    `json:"nodes"`
	Tasks []Task    `json:"tasks"`
}

// Node is one host of the cluster as the policy sees it.
type Node struct {
	// ID is the node's cluster name (memberlist node name). Unique.
	ID string `json:"id"`
	// Caps is what the host can run; compatibility of a task with the node
	// is decided on it. A node without Caps is never a target.
	Caps *compat.HostCaps `json:"caps"`
	// CPUs is the capacity in CPUs (online CPUs, or a cgroup's cpu.max
	// quota). A node with CPUs <= 0 is ignored.
	CPUs float64 `json:"cpus"`
	// Load is the node's whole CPU demand in CPUs, managed tasks and
	// everything else: the average number of runnable threads (loadavg-like)
	// or the CPU time used per second. Utilisation is Load/CPUs and may
	// exceed 1 on an overloaded node. A node advertises in it the CPU of the
	// moves in flight toward it that it accepted, so that other nodes see
	// the reservation before the task arrives.
	Load float64 `json:"load"`
	// FreeMemory in bytes (MemAvailable).
	FreeMemory uint64 `json:"free_memory"`
	// Bandwidth is the measured transfer rate of a move out of this node in
	// bytes per second; 0 means not measured (Config.DefaultBandwidth).
	Bandwidth float64 `json:"bandwidth"`
	// NoTarget excludes the node as a destination (draining, or the agent
	// refuses inbound moves); it can still be a source.
	NoTarget bool `json:"no_target,omitempty"`
}

// Task is one managed task: only managed tasks are ever moved.
type Task struct {
	// ID names the task across moves (the agent's managed-task name or id).
	ID string `json:"id"`
	// Node is the ID of the node the task runs on.
	Node string `json:"node"`
	// Manifest is the task's capability manifest; a task without one is
	// never moved.
	Manifest *image.Manifest `json:"manifest"`
	// CPU is the task's recent CPU demand in CPUs (1 = one CPU busy): CPU
	// time per second, or on an overloaded node better its average number
	// of runnable threads, since that is what it will use elsewhere.
	CPU float64 `json:"cpu"`
	// RSS in bytes: what a move sends at least once.
	RSS uint64 `json:"rss"`
	// DirtyRate is how fast the task writes memory, in bytes per second
	// (from the dirty tracker, or an estimate).
	DirtyRate float64 `json:"dirty_rate"`
	// LastMoved is when the task last arrived on its node by a move; zero
	// if it never moved.
	LastMoved time.Time `json:"last_moved"`
	// MovingTo is the target node of a move of this task in flight, empty
	// if none. The policy counts a move in flight as done, and a node with
	// a move out of it in flight proposes no other.
	MovingTo string `json:"moving_to,omitempty"`
}
