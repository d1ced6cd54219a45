// Package kubernetes holds the Kustomize base and overlays of the apiops worker and the
// JetStream definitions for operators who provision by hand. It is a separate module, so
// that the Kubernetes API types its tests decode into stay out of the service's module.
package kubernetes

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/yaml"

	"github.com/apiops-worker/apiops-worker/streams"
)

var update = flag.Bool("update", false, "rewrite the generated files (jetstream/, base/prometheusrule.yaml, base/dashboards/) instead of comparing")

// productionTopology is what the files in jetstream/ define: the worker's topology with
// WORKER_STREAM_REPLICAS=3, every other setting at its default.
func productionTopology() streams.Config { return streams.Config{Replicas: 3}.WithDefaults() }

type definition struct {
	path   string
	stream string // for a consumer: the stream it belongs to
	value  any
}

func jetStreamDefinitions(c streams.Config) []definition {
	return []definition{
		{path: "jetstream/streams/" + streams.Jobs + ".json", value: c.JobsStream()},
		{path: "jetstream/streams/" + streams.Results + ".json", value: c.ResultsStream()},
		{path: "jetstream/streams/" + streams.DeadLetters + ".json", value: c.DeadLetterStream()},
		{path: "jetstream/streams/" + streams.Advisories + ".json", value: c.AdvisoryStream()},
		{path: "jetstream/consumers/" + streams.Jobs + "-" + streams.Consumer + ".json", stream: streams.Jobs, value: c.ConsumerConfig()},
		{path: "jetstream/consumers/" + streams.Advisories + "-" + streams.AdvisoryConsumer + ".json", stream: streams.Advisories, value: c.AdvisoryConsumerConfig()},
	}
}

// provisionScript is jetstream/provision.sh: the nats CLI commands creating the topology
// from the JSON files, and the key-value bucket from flags (the CLI takes no file for one).
func provisionScript(c streams.Config) string {
	kv := c.LedgerConfig()
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Generated from streams.Config{Replicas: 3} by deploy/kubernetes/golden_test.go
# (go test ./... -update); do not edit. Creates the apiops JetStream topology with the nats CLI,
# for workers run with WORKER_NO_PROVISION=true. Run it from this directory with a context
# allowed to create streams (nats --context admin ...). Re-running it fails on objects that
# exist; change them with "nats stream edit --config FILE" / "nats consumer edit".
set -eu
cd "$(dirname "$0")"
`)
	for _, d := range jetStreamDefinitions(c) {
		rel := strings.TrimPrefix(d.path, "jetstream/")
		if d.stream == "" {
			fmt.Fprintf(&b, "nats stream add --config %s\n", rel)
		} else {
			fmt.Fprintf(&b, "nats consumer add %s --config %s\n", d.stream, rel)
		}
	}
	fmt.Fprintf(&b, "nats kv add %s --history=%d --ttl=%s --storage=%s --replicas=%d --description=%q\n",
		kv.Bucket, kv.History, kv.TTL, strings.ToLower(kv.Storage.String()), kv.Replicas, kv.Description)
	return b.String()
}

// TestJetStreamDefinitionsAreStreamsConfig checks that jetstream/ holds the topology of
// streams.Config, as the nats CLI takes it: streams and consumers are the JetStream API's JSON
// (what `nats stream add --config` and `nats consumer add STREAM --config` read), and the
// bucket is provision.sh's flags.
func TestJetStreamDefinitionsAreStreamsConfig(t *testing.T) {
	c := productionTopology()
	for _, d := range jetStreamDefinitions(c) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false) // subjects end in ">"
		enc.SetIndent("", "  ")
		if err := enc.Encode(d.value); err != nil {
			t.Fatal(err)
		}
		golden(t, d.path, b.Bytes())
	}
	golden(t, "jetstream/provision.sh", []byte(provisionScript(c)))
}

// TestJetStreamDefinitionsProvisionWhatTheWorkerDoes sends the committed JSON files to a
// real server through the JetStream API requests the nats CLI makes, and compares every
// stream and consumer with what the worker's own provisioning creates on another server.
// Replicas are set to 1: both servers are single nodes.
func TestJetStreamDefinitionsProvisionWhatTheWorkerDoes(t *testing.T) {
	fromFiles := runServer(t)
	byWorker := runServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, d := range jetStreamDefinitions(productionTopology()) {
		raw, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s: %v", d.path, err)
		}
		cfg["num_replicas"] = 1
		var subject string
		var req any = cfg
		if d.stream == "" {
			subject = "$JS.API.STREAM.CREATE." + cfg["name"].(string)
		} else {
			subject = "$JS.API.CONSUMER.CREATE." + d.stream + "." + cfg["durable_name"].(string)
			req = map[string]any{"stream_name": d.stream, "config": cfg}
		}
		body, _ := json.Marshal(req)
		msg, err := fromFiles.nc.RequestWithContext(ctx, subject, body)
		if err != nil {
			t.Fatalf("%s: %v", d.path, err)
		}
		var resp struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err := json.Unmarshal(msg.Data, &resp); err != nil || resp.Error != nil {
			t.Fatalf("%s: the server refused it: %s", d.path, msg.Data)
		}
	}
	kv := productionTopology().LedgerConfig()
	kv.Replicas = 1
	if _, err := fromFiles.js.CreateKeyValue(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if err := streams.Verify(ctx, fromFiles.js); err != nil {
		t.Fatalf("the worker would not start with --no-provision on the files' topology: %v", err)
	}

	topo := productionTopology()
	topo.Replicas = 1
	if err := streams.Provision(ctx, byWorker.js, topo); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{streams.Jobs, streams.Results, streams.DeadLetters, streams.Advisories, "KV_" + streams.LedgerBucket} {
		want, got := streamConfig(t, ctx, byWorker.js, name), streamConfig(t, ctx, fromFiles.js, name)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stream %s from the files differs from the worker's (-worker +files):\n%s", name, diff)
		}
	}
	for _, sc := range [][2]string{{streams.Jobs, streams.Consumer}, {streams.Advisories, streams.AdvisoryConsumer}} {
		want, got := consumerConfig(t, ctx, byWorker.js, sc[0], sc[1]), consumerConfig(t, ctx, fromFiles.js, sc[0], sc[1])
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("consumer %s/%s from the files differs from the worker's (-worker +files):\n%s", sc[0], sc[1], diff)
		}
	}
}

func streamConfig(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) map[string]any {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return asMap(t, s.CachedInfo().Config)
}

func consumerConfig(t *testing.T, ctx context.Context, js jetstream.JetStream, stream, name string) map[string]any {
	t.Helper()
	c, err := js.Consumer(ctx, stream, name)
	if err != nil {
		t.Fatalf("consumer %s/%s: %v", stream, name, err)
	}
	return asMap(t, c.CachedInfo().Config)
}

func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type natsServer struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func runServer(t *testing.T) natsServer {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return natsServer{nc: nc, js: js}
}

// TestPrometheusRuleIsRulesFile checks that base/prometheusrule.yaml carries exactly the
// groups of deploy/prometheus/rules.yml (the file promtool tests).
func TestPrometheusRuleIsRulesFile(t *testing.T) {
	raw, err := os.ReadFile("../prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.UnmarshalStrict(raw, &rules); err != nil {
		t.Fatal(err)
	}
	obj := map[string]any{
		"apiVersion": "monitoring.coreos.com/v1",
		"kind":       "PrometheusRule",
		"metadata": map[string]any{
			"name":   "apiops-worker",
			"labels": map[string]any{"app.kubernetes.io/name": "apiops-worker"},
		},
		"spec": map[string]any{"groups": rules["groups"]},
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	header := "# Generated from deploy/prometheus/rules.yml by deploy/kubernetes/golden_test.go\n" +
		"# (cd deploy/kubernetes && go test ./... -update); do not edit. Runbooks: docs/metrics.md.\n" +
		"# Add the label your Prometheus' ruleSelector wants (e.g. release: kube-prometheus-stack).\n"
	golden(t, "base/prometheusrule.yaml", append([]byte(header), out...))
}

// TestDashboardIsGrafanaFile checks that the dashboard ConfigMap's source is
// deploy/grafana/apiops-worker.json, byte for byte.
func TestDashboardIsGrafanaFile(t *testing.T) {
	raw, err := os.ReadFile("../grafana/apiops-worker.json")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "base/dashboards/apiops-worker.json", raw)
}

// golden compares the file at path with want, or writes it with -update.
func golden(t *testing.T, path string, want []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(path, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(path, want, mode); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./... -update in deploy/kubernetes)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s is out of date; run go test ./... -update in deploy/kubernetes (-want +got):\n%s", path, diff)
	}
}
