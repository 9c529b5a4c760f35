// Package rebalance is the placement and rebalancing policy of migrated: given
// a View of the cluster (each node's capabilities, load, capacity, free memory
// and bandwidth, and managed tasks with their CPU share, RSS and dirty rate),
// it proposes at most one move per hot node per period, to a compatible node
// with the most headroom, each with a sentence saying why.
//
// The policy is pure: no I/O, no goroutines, no clock, no random source. Time
// is an input (View.Now, and the time given to Policy.Failed). The only state
// a Policy keeps between periods is the record of failed moves (a task/target
// pair that failed is avoided for an exponential backoff). Everything else it
// needs, such as when a task last moved or which moves are in flight, comes in
// the View, so that the agent that owns those facts stays their only owner.
//
// # What the agent feeds it, and what it gets back
//
// Each period (Config.NextRun gives the jittered delay) the agent builds a
// View: every live node from gossip (Node: capabilities, CPUs, load including
// the moves in flight toward it, free memory, measured bandwidth) and its own
// managed tasks (Task: manifest, CPU, RSS, dirty rate, last moved, move in
// flight). Plan returns the proposals; Plan.For(self) is the one move this
// node starts, through the normal move path. The destination checks the move
// with Admit on its own fresh view before accepting it. When a move fails or
// is refused the agent calls Failed; when it succeeds, Moved. A View may also
// hold every node's tasks: then Plan is the plan of the whole cluster, the
// same on every node that has the same view.
//
// # The decision, in order
//
//  1. U = sum(Load)/sum(CPUs) over all nodes. A node is hot when its
//     utilisation Load/CPUs is above High*U and above MinHotUtil.
//  2. Moves in flight count as done: the source already lost the task's CPU,
//     the target already has it. A node with a move out of it in flight
//     proposes nothing: one move at a time per node.
//  3. Hot nodes are served hottest first. A task of a hot node is a
//     candidate unless it cools down (Cooldown since LastMoved), uses no CPU,
//     or its pre-copy would not converge within DowntimeLimit (EstimateMove
//     with the source's bandwidth and the task's dirty rate).
//  4. The task's pool is the set of nodes it can run on, by capability class
//     (nodes with equal HostCaps; Config.Compatible, compat.Decide by default:
//     ACCEPT or TRANSLATE), plus its own node. P is the pool's mean
//     utilisation. Hysteresis is relative to P: the source must be above
//     High*P (else the task could only go where the load is as high); a
//     target must be below Low*P now and at most Ceiling*P with the task
//     (Low <= Ceiling < High, so a target never becomes hot by a move), have
//     RSS + MemoryReserve free, and its task/target pair must not back off.
//  5. Among those targets, headroom = Ceiling*P*CPUs - Load; those within
//     Spread of the most headroom are tied (see below).
//  6. Gain = u_src - max(u_src', u_dst'): how much the peak of the pair falls.
//     Cost = CostPerGiB * GiB sent + CostPerDowntimeSecond * expected
//     downtime. Score = Gain - Cost. The node's proposal is its task with the
//     highest score, if the score is at least MinGain. The plan counts it as
//     done before the next hot node is served.
//  7. Only when no task of the node has such a move, a levelling move
//     (Config.Levelling, on by default) may take a target up to the
//     source's utilisation after the move instead of the ceiling: the pair's
//     peak falls, the pair never inverts, but the target may end above High.
//
// # Tie-breaking (deterministic)
//
//   - Hot nodes: higher utilisation first; then node ID ascending.
//   - Targets of one task: with Spread > 0, every target with at least
//     (1-Spread) times the most headroom is tied, and the highest FNV-1a hash
//     of (task ID, node ID) wins (rendezvous hashing): nodes that plan at the
//     same moment on the same gossip view spread their tasks over the
//     near-best targets instead of all choosing the same one. With Spread 0:
//     more headroom, then node ID ascending.
//   - Tasks of one node: higher score; then higher gain; then smaller RSS;
//     then task ID ascending.
//
// Equal means bit-for-bit equal float64 values, so the same View always gives
// the same Plan, whatever the order of its nodes and tasks.
//
// The package must not know how views are gathered (gossip, the agent's
// control API) nor how moves are executed; it imports image and compat only.
// The simulator that runs this same code over thousands of synthetic nodes is
// in rebalance/sim.
package rebalance
