// Package image is the task image model of migrated and its wire schema.
//
// The model (image.proto, generated into image.pb.go) says what a task is,
// independent of how it travels: a Header (format version, arch, byte order,
// word size, ABI, page size, kernel, vDSO identity), the capability
// Manifest, VMAs, threads with arch-tagged register sets, signal state, fds,
// mm fields, creds, limits, timers and clocks. The same messages travel in
// an image file and, wrapped in Control, on the control stream of a move.
// Page contents never travel in protobuf: they go in page frames
// (pageframe.go).
//
// An image file is a stream:
//
//	offset size  field
//	     0    8  magic "MIGRIMG\x00"
//	     8    4  format version (uint32 little-endian, FormatVersion)
//	    12    4  reserved, 0
//	    16       records, each:
//	               1  kind: 1 task, 2 page frame, 3 end
//	               4  length L of the body (uint32 little-endian)
//	               L  body: a protobuf Task, a page frame, or the end record
//	               4  CRC-32C of kind, length and body
//
// The task record comes first, then the page frames in any order, then one
// end record (16 bytes: the number of page frames and the number of pages,
// uint64 little-endian each). A stream without its end record is truncated.
// A reader refuses a bad magic (ErrBadMagic), a version it does not know
// (*VersionError, matching ErrUnknownVersion), a record whose CRC does not
// match (ErrChecksum) and a stream that ends early (ErrTruncated), and never
// allocates more than a record kind's limit whatever a length claims.
//
// This package knows no kernel interface and no transport.
package image
