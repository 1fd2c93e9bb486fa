package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/watcher"
)

func newRunCommand() *cobra.Command {
	var addr, data, nats string
	var bases, kafka []string
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "The local loop: build, run in the environment \"local\", rebuild on every save",
		Long: `Build the repository in DIR (default .) into a registry under the data
folder, run it in the environment "local" behind a gateway on ADDR, and
print each function's URL (http://ADDR/local/<path>). Then watch the
files: every save builds and applies again ("building: FILE changed"),
and the old version serves until the new one is healthy. The data folder,
.git, what Git ignores (or, outside a Git repository, what DIR/.gitignore
lists) and editors' temporary files are not watched. One ferry run per
data folder: a second one says which process holds it. A broken edit is reported and the last good
version keeps serving. Stop with Ctrl-C.

Python and Node.js functions build with no base image (--base
python=scratch) and run with this machine's python3 and node.

Functions run in bubblewrap's sandbox when it is installed (Debian's
bubblewrap): as uid 65532 (your own uid outside, when you are not root),
with no network but the socket ferry hands them, and a private /tmp.
Without it they run as you, and ferry run says so once.

NATSTriggers subscribe on the server given by --nats, KafkaTriggers
consume from the brokers given by --kafka; a trigger of either kind with
none given fails to apply and says which flag it needs.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := sandbox.HardenSelf(); err != nil {
				return err
			}
			given, err := baseOptions(bases)
			if err != nil {
				return err
			}
			sb, err := sandbox.Find(cmd.Context(), sandbox.ModeAuto, sandbox.NetworkNone)
			if err != nil {
				return err
			}
			if !sb.Enabled() {
				fmt.Fprintf(cmd.OutOrStdout(), "no sandbox: functions run as you (%s)\n", sb.Note())
			}
			// why: the data folder lives in DIR, where ferry init's
			// .gitignore names it, whatever folder ferry run starts from.
			if data == "" {
				data = filepath.Join(dirArg(args), ".ferry-data")
			}
			changes, err := watcher.NewFolder(cmd.Context(), watcher.FolderConfig{Dir: dirArg(args), Skip: []string{data}})
			if err != nil {
				return err
			}
			opts := append([]build.Option{build.WithBase("python", build.Scratch), build.WithBase("nodejs", build.Scratch)}, given...)
			return embedded.RunDev(cmd.Context(), embedded.DevConfig{
				Dir: dirArg(args), Addr: addr, DataDir: data, Options: opts, Out: cmd.OutOrStdout(),
				NATSURL: nats, KafkaBrokers: kafka, Sandbox: sb, Changes: changes,
			})
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "where the gateway listens (not make run's 8081, so both can run)")
	cmd.Flags().StringVar(&data, "data", "", "folder for the registry, the build cache, images and logs (default DIR/.ferry-data)")
	cmd.Flags().StringArrayVar(&bases, "base", nil, "base image of a runtime as RUNTIME=IMAGE (repeatable)")
	cmd.Flags().StringVar(&nats, "nats", "", "NATS server of NATSTriggers (nats://HOST:PORT)")
	cmd.Flags().StringSliceVar(&kafka, "kafka", nil, "Kafka seed brokers of KafkaTriggers (HOST:PORT, comma-separated)")
	return cmd
}
