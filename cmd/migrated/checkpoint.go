package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/migrated/migrated/checkpoint"
	"github.com/migrated/migrated/compat"
	"github.com/migrated/migrated/image"
)

func init() { rootCmd.AddCommand(newCheckpointCmd()) }

func newCheckpointCmd() *cobra.Command {
	var out, codec string
	var leave, asJSON bool
	cmd := &cobra.Command{
		Use:   "checkpoint <pid> -o FILE",
		Short: "Freeze a process, write its image to FILE, and end it",
		Long: `checkpoint freezes every thread of a process, writes its whole state and
memory to an image file, and then kills it (--leave-running thaws it
instead). A process the engine cannot carry (for example one holding a pipe,
a socket or a terminal) is refused before it is frozen, with every such fd
named, and keeps running untouched. Runs locally, as root.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			pid, err := strconv.Atoi(args[0])
			if err != nil || pid <= 0 {
				return usageError{fmt.Errorf("bad pid %q", args[0])}
			}
			if out == "" {
				return usageError{fmt.Errorf("-o FILE is required")}
			}
			if _, err := image.ParseCodec(codecName(codec)); err != nil {
				return usageError{err}
			}
			// Write beside the target and rename at the end: a failed
			// checkpoint leaves no partial image.
			tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			task, st, err := checkpoint.Dump(pid, tmp, checkpoint.DumpOptions{
				LeaveRunning: leave, Codec: codecName(codec), Manifest: compat.NewManifest,
			})
			if err != nil {
				tmp.Close()
				return err
			}
			if err := tmp.Sync(); err != nil {
				return err
			}
			if err := tmp.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return err
			}
			r := checkpointReport{PID: pid, Image: out, Threads: len(task.Threads), VMAs: len(task.Vmas),
				Pages: st.Pages, MemoryBytes: st.MemoryBytes, ImageBytes: st.ImageBytes,
				FrozenMs: float64(st.Frozen.Microseconds()) / 1000, TotalMs: float64(st.Total.Microseconds()) / 1000,
				LeftRunning: leave}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(r)
			}
			state := "killed"
			if leave {
				state = "left running"
			}
			fmt.Printf("checkpointed pid %d to %s (%s): %d threads, %d VMAs, %d pages (%s of memory) in %s of image; frozen %.1f ms\n",
				pid, out, state, r.Threads, r.VMAs, r.Pages, humanBytes(r.MemoryBytes), humanBytes(uint64(r.ImageBytes)), r.FrozenMs)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "image file to write")
	cmd.Flags().BoolVar(&leave, "leave-running", false, "thaw the process after the checkpoint instead of killing it")
	cmd.Flags().StringVar(&codec, "compress", "s2", "page compression: s2, zstd or none")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

type checkpointReport struct {
	PID         int     `json:"pid"`
	Image       string  `json:"image"`
	Threads     int     `json:"threads"`
	VMAs        int     `json:"vmas"`
	Pages       uint64  `json:"pages"`
	MemoryBytes uint64  `json:"memory_bytes"`
	ImageBytes  int64   `json:"image_bytes"`
	FrozenMs    float64 `json:"frozen_ms"`
	TotalMs     float64 `json:"total_ms"`
	LeftRunning bool    `json:"left_running"`
}

// codecName maps the CLI's "none" to the frame codec "raw".
func codecName(s string) string {
	if s == "none" {
		return "raw"
	}
	return s
}
