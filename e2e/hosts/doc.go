// Package hosts holds the host end-to-end tests: two (or three) namespace
// hosts on this machine (e2e/nshost), a real `migrated agent` in each, and
// real workloads moved between them with `migrated move`, checked by their
// own verdicts. The same Setup serves the README's demo and the benchmark
// harness.
package hosts
