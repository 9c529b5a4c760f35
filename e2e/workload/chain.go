package workload

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
)

// ChainFinal computes, independently of the Python workload, the final hash
// that chain.py reports for seed and steps: the result of a run that was
// never moved. h[0] = sha256(seed); h[i+1] = sha256(h[i] || uint64le(i)).
func ChainFinal(seed string, steps int) string {
	h := sha256.Sum256([]byte(seed))
	var buf [sha256.Size + 8]byte
	for i := 0; i < steps; i++ {
		copy(buf[:], h[:])
		binary.LittleEndian.PutUint64(buf[sha256.Size:], uint64(i))
		h = sha256.Sum256(buf[:])
	}
	return hex.EncodeToString(h[:])
}
