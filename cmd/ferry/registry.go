package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferrycd/ferry/build/registry"
	"github.com/ferrycd/ferry/internal/listen"
)

// registryShutdownGrace is how long `registry serve` lets pushes and
// pulls in flight finish after a signal before it cuts them.
const registryShutdownGrace = 10 * time.Second

func newRegistryCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run ferry's embedded OCI registry on its own",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newRegistryServeCommand())
	return cmd
}

func newRegistryServeCommand() *cobra.Command {
	var addr, data string
	var public bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the embedded OCI registry until interrupted",
		Long: `Serve an OCI registry (the distribution registry, embedded) on ADDR,
storing images under DATA, where they survive a restart. It stops
gracefully on SIGINT or SIGTERM. The registry has no authentication, so it
listens on loopback addresses only unless --public is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			reg, err := registry.New(ctx, registry.Config{Addr: addr, Dir: data, Log: cmd.ErrOrStderr(), Public: public})
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("registry: %w", listen.Explain(err, addr, "move it with --addr (port 0 picks a free one)"))
			}
			if err != nil {
				return err
			}
			served := make(chan error, 1)
			go func() { served <- reg.Serve() }()
			fmt.Fprintf(cmd.OutOrStdout(), "registry: serving on http://%s (data %s)\n", reg.Addr(), data)
			select {
			case err := <-served:
				_ = reg.Shutdown(context.WithoutCancel(ctx))
				return err
			case <-ctx.Done():
			}
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryShutdownGrace)
			defer cancel()
			if err := reg.Shutdown(stopCtx); err != nil {
				return err
			}
			return <-served
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:5000", "host:port to listen on (port 0 picks a free one)")
	cmd.Flags().StringVar(&data, "data", "./.ferry-data/registry", "folder where the registry stores images")
	cmd.Flags().BoolVar(&public, "public", false, "allow an address that is not loopback (the registry has no authentication: put your own in front)")
	return cmd
}
