# Benchmarks. Included by the main Makefile, which wires `make bench` to both targets.
# See bench/README.md.

# BENCH_ARGS are passed to the bench program, e.g. BENCH_ARGS='-jobs 5000'.
BENCH_ARGS ?=
# BENCH_GO_FLAGS are added to go test, e.g. BENCH_GO_FLAGS='-benchtime 20000x -cpuprofile cpu.out'.
BENCH_GO_FLAGS ?=
# Packages holding a Go benchmark, the container suite excepted.
BENCH_PKGS  = $(sort $(dir $(shell grep -rl --include='*_test.go' '^func Benchmark' . | grep -v '^./integration/')))

.PHONY: bench-program bench-go

## bench-program: end-to-end figures against the issue's targets (nats-server, simulator, worker and enqueue processes); prints a table, writes bench/results/latest.json
bench-program:
	$(GO) run ./bench $(BENCH_ARGS)

## bench-go: Go benchmarks of the hot paths and of the per-job bookkeeping (ledger on vs off)
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem $(BENCH_GO_FLAGS) $(BENCH_PKGS)
