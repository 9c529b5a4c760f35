// Package sim runs the rebalance policy, unchanged, over a synthetic cluster:
// thousands of nodes of mixed capabilities (ppc64le POWER9 and POWER10,
// big-endian ppc64 with and without 32-bit support, amd64 with and without
// AVX-512), tasks with real capability manifests (ppc64le, some needing ISA
// 3.1; ppc64 ELFv1; ppc32 needing CONFIG_COMPAT; amd64 and i386), a load that
// shifts over time (a hot spot that moves), nodes that act at jittered times
// on a gossip view that lags, moves that take time (pre-copy over each
// node's bandwidth) and sometimes fail.
//
// Every move the policy proposes is checked again here, independently of the
// policy, with compat.Decide and the destination's admission check; the
// Result counts what would have gone wrong. The run is deterministic for a
// seed, except the measured policy step time.
//
// sim owns the synthetic cluster model; it must not reach into the policy's
// internals (it sees only rebalance's exported API, as the agent does).
package sim
