package e2e

import (
	"testing"
	"time"

	"github.com/metricstor/metricstor/testbed/harness"
)

// TestKillAndRestart checks the durability contract: data acknowledged by the OTLP receiver
// survives kill -9 of the process, and a clean SIGTERM restart, with identical answers.
func TestKillAndRestart(t *testing.T) {
	binary := harness.Binary(t)
	cfg := harness.NewConfig(t)
	configPath := cfg.Write(t)
	proc := harness.StartReady(t, "metricstor (first run)", binary, configPath, cfg.Ports)

	start := startTime()
	viaGRPC := newFixture("grpc-1", start)
	viaHTTP := newFixture("http-1", start)
	fixtures := []fixture{viaGRPC, viaHTTP}
	pushSteps(t, pushHTTP, cfg.Ports, viaHTTP, 0, steps)
	pushSteps(t, pushGRPC, cfg.Ports, viaGRPC, 0, steps-1)
	// The last push is acknowledged, then the process is killed at once: no shutdown, no flush.
	pushGRPC(t, cfg.Ports, viaGRPC.metrics(steps-1))
	proc.Kill()

	proc = harness.StartReady(t, "metricstor (after kill -9)", binary, configPath, cfg.Ports)
	t.Run("after_kill", func(t *testing.T) { checkReadBack(t, newAPI(t, cfg.Ports), fixtures) })

	proc.Stop(30 * time.Second)
	harness.StartReady(t, "metricstor (after SIGTERM)", binary, configPath, cfg.Ports)
	t.Run("after_sigterm", func(t *testing.T) { checkReadBack(t, newAPI(t, cfg.Ports), fixtures) })
}
