// Package cluster owns membership: which agents exist, whether they are
// alive, and what each advertises about itself. It wraps
// hashicorp/memberlist (gossip encrypted with the cluster secret through the
// memberlist keyring) and packs each node's HostCaps, QUIC address, load,
// free memory and managed-task count into memberlist's node metadata (at
// most 512 bytes; see meta.go for the encoding), refreshed periodically
// with UpdateNode.
//
// It must not know about moves, the control API or the QUIC transport:
// it only carries the transport's address. Failure decisions during a move
// belong to the transport, not to gossip (a small cluster takes seconds to
// declare a peer dead).
package cluster
