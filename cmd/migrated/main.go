// Command migrated moves running Linux processes between hosts. `migrated
// agent` is the daemon; every other command talks to the local agent over
// its control socket or inspects this host.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := rootCmd.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "migrated: %v\n", err)
		os.Exit(exitCode(err))
	}
}
