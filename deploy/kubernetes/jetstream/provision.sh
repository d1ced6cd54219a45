#!/bin/sh
# Generated from streams.Config{Replicas: 3} by deploy/kubernetes/golden_test.go
# (go test ./... -update); do not edit. Creates the apiops JetStream topology with the nats CLI,
# for workers run with WORKER_NO_PROVISION=true. Run it from this directory with a context
# allowed to create streams (nats --context admin ...). Re-running it fails on objects that
# exist; change them with "nats stream edit --config FILE" / "nats consumer edit".
set -eu
cd "$(dirname "$0")"
nats stream add --config streams/APIOPS_JOBS.json
nats stream add --config streams/APIOPS_RESULTS.json
nats stream add --config streams/APIOPS_DLQ.json
nats stream add --config streams/APIOPS_ADVISORIES.json
nats consumer add APIOPS_JOBS --config consumers/APIOPS_JOBS-apiops-worker.json
nats consumer add APIOPS_ADVISORIES --config consumers/APIOPS_ADVISORIES-apiops-worker-advisories.json
nats kv add apiops_ledger --history=1 --ttl=168h0m0s --storage=file --replicas=3 --description="apiops job claims, results and per-resource order"
