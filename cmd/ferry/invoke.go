package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/environments/embedded"
)

func newInvokeCommand() *cobra.Command {
	var env, addr, data string
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION",
		Short: "Call a function by name through the gateway and print its answer",
		Long: `Call FUNCTION in ENV through the gateway at ADDR, with DATA (JSON) as the
event's data, and print the answer. Exit 1 when the function does not
answer 2xx. Works for functions with or without an HTTPTrigger.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if data != "" && !json.Valid([]byte(data)) {
				return fmt.Errorf("--data is not JSON: %s", data)
			}
			code, body, err := embedded.Invoke(cmd.Context(), "http://"+addr, env, args[0], []byte(data))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(body))
			if code/100 != 2 {
				return fmt.Errorf("%s answered %d", args[0], code)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&env, "env", "local", "environment")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8081", "the gateway's address")
	cmd.Flags().StringVar(&data, "data", "", "the event's data, as JSON")
	return cmd
}

func newLogsCommand() *cobra.Command {
	var env, dataDir string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs FUNCTION",
		Short: "Print a function's log, each line with its time and stream",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return embedded.CopyLog(cmd.Context(), embedded.LogFile(dataDir, env, args[0]), cmd.OutOrStdout(), follow)
		},
	}
	cmd.Flags().StringVar(&env, "env", "local", "environment")
	cmd.Flags().StringVar(&dataDir, "data", "./.ferry-data", "the data folder of ferry run (or ferry serve)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}
