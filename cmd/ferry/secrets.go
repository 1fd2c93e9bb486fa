package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/server"
)

// maxSecretInput is how much of standard input a secret may take; the
// server refuses more anyway, and reading on would hang on a mistake such as
// `ferry secrets set dev X < /dev/zero`.
const maxSecretInput = 64<<10 + 2

func newSecretsCommand() *cobra.Command {
	r := &remote{}
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "The secrets of an environment, which functions read through env valueFrom",
		Long: `An environment's secrets are sealed in ferry serve's store and reach only the
processes of the functions that name them:

  env:
    DB_PASSWORD: {valueFrom: {secret: db-password}}

Setting or deleting a secret needs the admin role; listing, any token.`,
	}
	r.flags(cmd)

	var raw bool
	set := &cobra.Command{
		Use:   "set ENV NAME",
		Short: "Set a secret from standard input, and restart the functions of ENV that use it",
		Long: `Set reads the value from standard input, never from the command line (where
the shell's history and the process list would keep it). One trailing newline
is dropped, the one echo and a terminal add; --raw keeps the bytes as they are.

  printf %s "$DB_PASSWORD" | ferry secrets set prod db-password
  ferry secrets set prod tls-key --raw < key.pem

The functions of ENV's live release whose variables change start again with
the new value, healthy before they replace the running ones; the others keep
running.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			env, name := args[0], args[1]
			value, err := readSecret(cmd.InOrStdin(), cmd.ErrOrStderr(), env, name, raw)
			if err != nil {
				return err
			}
			res, err := c.SetEnvSecret(cmd.Context(), env, name, value)
			if err != nil {
				return err
			}
			return r.print(cmd.OutOrStdout(), res, func(tw *tabwriter.Writer) {
				verb := "set"
				if res.Replaced {
					verb = "replaced"
				}
				fmt.Fprintf(tw, "secret %s of %s %s.\n", name, env, verb)
				if res.Reloaded {
					fmt.Fprintf(tw, "The functions of %s's live release that use it, if any, were restarted with the new value; a release whose deploy failed for want of it goes in again with: ferry promote RELEASE --to %s\n", env, env)
				} else {
					fmt.Fprintf(tw, "The functions of %s were not restarted, and keep the previous value: %s\nThe next deploy to %s uses the new value.\n", env, res.ReloadError, env)
				}
			})
		},
	}
	set.Flags().BoolVar(&raw, "raw", false, "keep a trailing newline of standard input")

	list := &cobra.Command{
		Use: "list ENV", Short: "List the secrets of an environment: names and times, never values", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			secs, err := c.EnvSecrets(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if secs == nil {
				secs = []server.EnvSecretView{}
			}
			return r.print(cmd.OutOrStdout(), secs, func(tw *tabwriter.Writer) {
				if len(secs) == 0 {
					fmt.Fprintf(tw, "%s has no secrets; set one with: ferry secrets set %s NAME < file\n", args[0], args[0])
					return
				}
				fmt.Fprintln(tw, "NAME\tCREATED\tUPDATED")
				for _, s := range secs {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, ago(s.Created), ago(s.Updated))
				}
			})
		},
	}

	del := &cobra.Command{
		Use: "delete ENV NAME", Aliases: []string{"rm"}, Short: "Delete a secret of an environment", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := r.client()
			if err != nil {
				return err
			}
			if err := c.DeleteEnvSecret(cmd.Context(), args[0], args[1]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret %s of %s deleted. Running functions keep the value they started with; the next deploy of a release that names it fails until it is set again.\n", args[1], args[0])
			return nil
		},
	}
	cmd.AddCommand(set, list, del)
	return cmd
}

// readSecret reads a secret's value from in. A terminal gets a prompt on
// errw; the value must be text, as an environment variable's is.
func readSecret(in io.Reader, errw io.Writer, env, name string, raw bool) (string, error) {
	if isTerminal(in) {
		fmt.Fprintf(errw, "Value of secret %s of %s, then Enter and Ctrl-D (it shows as you type; pipe it from a file to keep it off the screen):\n", name, env)
	}
	b, err := io.ReadAll(io.LimitReader(in, maxSecretInput))
	if err != nil {
		return "", fmt.Errorf("reading the value of secret %s from standard input: %w", name, err)
	}
	if len(b) >= maxSecretInput {
		return "", fmt.Errorf("secret %s: standard input holds more than 64 KiB; a secret is a password, a token or a key", name)
	}
	v := string(b)
	if !raw {
		if s, ok := strings.CutSuffix(v, "\n"); ok {
			v = strings.TrimSuffix(s, "\r")
		}
	}
	switch {
	case v == "":
		return "", errors.New("the value is empty; give it on standard input: printf %s VALUE | ferry secrets set " + env + " " + name)
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		return "", fmt.Errorf("secret %s: the value is not text (an environment variable holds UTF-8 without NUL bytes); encode it first, with base64 say", name)
	}
	return v, nil
}
