package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serverShutdownTimeout bounds closing the health and metrics listener
// once the triggers have drained: a scrape in progress gets this long.
const serverShutdownTimeout = 5 * time.Second

// RunConfig is what `ferry dispatch` runs.
type RunConfig struct {
	Plan *Plan
	// Listen is where /healthz and /metrics answer (HOST:PORT); "" serves
	// neither.
	Listen string
	// Log gets the dispatcher's lines; nil writes JSON lines to stderr.
	Log *slog.Logger
	// Ready is called, when set, once the triggers run, with the address
	// Listen took ("" without Listen).
	Ready func(addr string)
}

// Run runs the plan's NATS and Kafka triggers until ctx ends, then
// drains: no new message is taken, calls under way finish, Kafka offsets
// of what every function answered are committed and the consumers leave
// their groups. /healthz answers 200 while the triggers run, 503 before
// and while draining. A trigger that cannot start (a server that does not
// answer, a function the plan lacks) ends Run with the error, so the
// process exits and its supervisor (the Deployment) starts it again.
func Run(ctx context.Context, cfg RunConfig) error {
	log := cfg.Log
	if log == nil {
		log = jsonLogger(os.Stderr)
	}
	p := cfg.Plan
	if err := p.Check(); err != nil {
		return fmt.Errorf("dispatch plan: %w", err)
	}
	log = log.With("environment", p.Environment)
	metrics := NewMetrics()
	d := New(Config{
		Environment:  p.Environment,
		NATSURL:      p.NATSURL,
		KafkaBrokers: p.KafkaBrokers,
		Log:          func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
		Metrics:      metrics,
	})
	defer d.Stop()

	var healthy atomic.Bool
	addr := ""
	if cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return fmt.Errorf("listening for /healthz and /metrics on %s: %w", cfg.Listen, err)
		}
		addr = ln.Addr().String()
		srv := &http.Server{Handler: handler(&healthy, metrics), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving /healthz and /metrics: " + err.Error())
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), serverShutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}

	if err := d.Apply(ctx, p.Set(), p.Invoker()); err != nil {
		return err
	}
	healthy.Store(true)
	log.Info("dispatching", "natsTriggers", len(p.NATSTriggers), "kafkaTriggers", len(p.KafkaTriggers),
		"functions", len(p.Functions), "listen", addr)
	if cfg.Ready != nil {
		cfg.Ready(addr)
	}
	<-ctx.Done()
	healthy.Store(false)
	log.Info("draining: no new messages; finishing the calls under way and committing Kafka offsets")
	d.Stop()
	log.Info("stopped")
	return nil
}

// handler serves /healthz and /metrics.
func handler(healthy *atomic.Bool, m *Metrics) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			http.Error(w, "not dispatching (starting or draining)", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// jsonLogger writes JSON lines to w, as a cluster's log collector reads
// them.
func jsonLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }
