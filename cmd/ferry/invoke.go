package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/environments/embedded"
	"github.com/ferrycd/ferry/server"
)

func newInvokeCommand() *cobra.Command {
	r := &remote{}
	var env, addr, data, method, path string
	cmd := &cobra.Command{
		Use:   "invoke FUNCTION",
		Short: "Call a function and print its answer",
		Long: `Call FUNCTION in ENV with DATA as the event's data, and print the answer.
Exit 1 when the function does not answer 2xx.

With a server (--server or $FERRY_SERVER, and a token of the deployer or
admin role) the call goes through ferry serve's API to its gateway; without
one, straight to the gateway of ferry run at --addr. Without --path the
function is called by name (POST), with or without an HTTPTrigger; with
--path (and --method) through one of its HTTPTriggers. --data @FILE sends
the file's contents.`,
		Example: `  ferry invoke hello --env dev --data '{"name": "ada"}'
  ferry invoke hello --env dev --method GET --path /hello
  ferry invoke report --env local -d @event.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fn := args[0]
			body, err := invokeData(data)
			if err != nil {
				return err
			}
			local := r.serverAddr() == "" || cmd.Flags().Changed("addr")
			if local {
				code, answer, err := embedded.Call(cmd.Context(), "http://"+addr, env, strings.ToUpper(method), invokePath(fn, path), body)
				if err != nil {
					return err
				}
				return printAnswer(cmd, fn, code, answer)
			}
			if !cmd.Flags().Changed("env") {
				return fmt.Errorf("give --env: which environment of %s to call %s in", r.serverAddr(), fn)
			}
			c, err := r.client()
			if err != nil {
				return err
			}
			in := server.InvokeRequest{Path: path, Body: body}
			if cmd.Flags().Changed("method") || path != "" {
				in.Method = strings.ToUpper(method)
			}
			if len(body) > 0 {
				in.Header = http.Header{"Content-Type": {"application/json"}}
			}
			ans, err := c.Invoke(cmd.Context(), env, fn, in)
			if err != nil {
				return err
			}
			return printAnswer(cmd, fn, ans.Status, ans.Body)
		},
	}
	r.flags(cmd)
	cmd.Flags().StringVar(&env, "env", "local", "environment")
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8090", "the gateway of ferry run (used when no server is given)")
	cmd.Flags().StringVarP(&data, "data", "d", "", "the event's data, as JSON, or @FILE")
	cmd.Flags().StringVar(&method, "method", http.MethodPost, "the HTTP method, with --path")
	cmd.Flags().StringVar(&path, "path", "", "an HTTPTrigger's path of the function, e.g. /hello (default: call it by name)")
	return cmd
}

// invokeData reads --data: JSON as given, or the contents of @FILE.
func invokeData(data string) ([]byte, error) {
	if file, ok := strings.CutPrefix(data, "@"); ok {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--data @%s: %w", file, err)
		}
		if !json.Valid(b) {
			return nil, fmt.Errorf("--data @%s: the file is not JSON", file)
		}
		return b, nil
	}
	if data != "" && !json.Valid([]byte(data)) {
		return nil, fmt.Errorf("--data is not JSON: %s (give a file as @FILE)", data)
	}
	return []byte(data), nil
}

// invokePath is the gateway path a local call takes.
func invokePath(fn, path string) string {
	if path == "" {
		return embedded.InvokePath(fn)
	}
	return path
}

// printAnswer prints a function's answer; a status other than 2xx is the
// command's failure.
func printAnswer(cmd *cobra.Command, fn string, code int, answer []byte) error {
	out := cmd.OutOrStdout()
	out.Write(answer)
	if len(answer) > 0 && answer[len(answer)-1] != '\n' {
		fmt.Fprintln(out)
	}
	if code/100 != 2 {
		return fmt.Errorf("%s answered %d %s", fn, code, http.StatusText(code))
	}
	return nil
}
