// Package rebalance is the placement and rebalancing policy of migrated: given
// a View of the cluster (each node's capabilities, load, capacity, free memory
// and bandwidth, and the managed tasks with their CPU share, RSS and dirty
// rate), it proposes at most one move per hot node per period, to the
// compatible node with the most headroom, each with a sentence saying why.
//
// The policy is pure: no I/O, no goroutines, no clock. Time is an input
// (View.Now, and the time given to Policy.Failed). The only state a Policy
// keeps between periods is the record of failed moves (a task/target pair
// that failed is put on an exponential backoff). Everything else it needs,
// such as when a task last moved or which moves are in flight, comes in the
// View, so that the agent that owns those facts stays their only owner.
//
// # The decision, in order
//
//  1. Mean utilisation U = sum(Load) / sum(CPUs) over all nodes of the view.
//     A node is hot when its utilisation is above High*U and above MinHotUtil
//     (hysteresis: nothing happens between the watermarks). A node can be a
//     target only if, with the task added, it stays at or below Low*U
//     (Low < High, so a node that received a task is never hot because of it).
//  2. Moves in flight count as done: the source already lost the task's CPU,
//     the target already has it; a node with a move in flight proposes nothing.
//  3. Hot nodes are served hottest first. For each task of a hot node that is
//     not cooling down (Cooldown since its last move) and whose move would
//     converge (EstimateMove within DowntimeLimit), the candidate target is
//     the compatible node (Config.Compatible, compat.Decide by default:
//     ACCEPT or TRANSLATE) with the most headroom (Low*U*CPUs - Load) that
//     is not the source, has the memory (RSS + MemoryReserve) and whose
//     task/target pair is not backing off after a failure.
//  4. Gain = u_src - max(u_src', u_dst'): how much the peak of the pair falls.
//     Cost = CostPerGiB * GiB sent + CostPerDowntimeSecond * expected downtime.
//     Score = Gain - Cost. The node's proposal is its task with the highest
//     score, and only if Score >= MinGain. The chosen target's load and memory
//     are updated before the next hot node is served, so two hot nodes do not
//     both fill the same target.
//
// # Tie-breaking (deterministic)
//
//   - Hot nodes: higher utilisation first; then node ID ascending.
//   - Targets for one task: more headroom (CPUs) first; then lower
//     utilisation after the move; then node ID ascending.
//   - Tasks of one node: higher score first; then higher gain; then smaller
//     RSS; then task ID ascending.
//
// Equal means bit-for-bit equal float64 values, so the same View always gives
// the same Plan, on every node: each agent can compute the whole cluster's
// plan from its gossip view and execute only its own row.
//
// The package must not know how views are gathered (gossip, the agent's
// control API) nor how moves are executed; it imports image and compat only.
// The simulator that runs this same code over thousands of synthetic nodes is
// in rebalance/sim.
package rebalance
