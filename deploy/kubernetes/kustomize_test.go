package kubernetes

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/apiops-worker/apiops-worker/streams"
)

// scaledObject mirrors the fields of KEDA's ScaledObject CRD (keda.sh/v1alpha1) that these
// manifests may use. KEDA's Go module pulls in controller-runtime and much of KEDA, so the
// strict decode is against this local copy of the schema instead: a field not listed here
// fails the test, as an unknown field would fail KEDA's structural schema.
type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Triggers        []struct {
			Type              string            `json:"type"`
			Name              string            `json:"name,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// rendered is one kustomize build, decoded.
type rendered struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	secrets         []*corev1.Secret
	configMaps      []*corev1.ConfigMap
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	pdbs            []*policyv1.PodDisruptionBudget
	podMonitors     []*monitoringv1.PodMonitor
	rules           []*monitoringv1.PrometheusRule
	scaledObjects   []*scaledObject
	networkPolicies []*networkingv1.NetworkPolicy
	all             []metav1.Object
}

// kustomizeBuild runs kustomize build on dir and decodes every object strictly into its Go
// type: an unknown or misspelt field, a wrong apiVersion or an unexpected kind fails.
func kustomizeBuild(t *testing.T, dir string) *rendered {
	t.Helper()
	bin := os.Getenv("KUSTOMIZE")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("kustomize"); err != nil {
			gopath, _ := exec.Command("go", "env", "GOPATH").Output()
			bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "kustomize")
		}
	}
	cmd := exec.Command(bin, "build", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s build %s: %v\n%s(install it with make tools-kustomize)", bin, dir, err, stderr.String())
	}
	r := &rendered{}
	for i, doc := range strings.Split(string(out), "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("%s: object %d: %v", dir, i, err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			t.Fatal(err)
		}
		var obj metav1.Object
		switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
		case "v1 Namespace":
			obj = decodeInto(t, js, &r.namespaces)
		case "v1 ServiceAccount":
			obj = decodeInto(t, js, &r.serviceAccounts)
		case "v1 Secret":
			obj = decodeInto(t, js, &r.secrets)
		case "v1 ConfigMap":
			obj = decodeInto(t, js, &r.configMaps)
		case "apps/v1 Deployment":
			obj = decodeInto(t, js, &r.deployments)
		case "v1 Service":
			obj = decodeInto(t, js, &r.services)
		case "policy/v1 PodDisruptionBudget":
			obj = decodeInto(t, js, &r.pdbs)
		case "monitoring.coreos.com/v1 PodMonitor":
			obj = decodeInto(t, js, &r.podMonitors)
		case "monitoring.coreos.com/v1 PrometheusRule":
			obj = decodeInto(t, js, &r.rules)
		case "keda.sh/v1alpha1 ScaledObject":
			obj = decodeInto(t, js, &r.scaledObjects)
		case "networking.k8s.io/v1 NetworkPolicy":
			obj = decodeInto(t, js, &r.networkPolicies)
		default:
			t.Fatalf("%s: unexpected object %s", dir, gvk)
		}
		r.all = append(r.all, obj)
	}
	return r
}

func decodeInto[T any, PT interface {
	*T
	metav1.Object
}](t *testing.T, js []byte, list *[]PT) metav1.Object {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var v PT = new(T)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("strict decode of %s: %v", firstLine(js), err)
	}
	*list = append(*list, v)
	return v
}

func firstLine(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

func one[T any](t *testing.T, list []T, what string) T {
	t.Helper()
	if len(list) != 1 {
		t.Fatalf("%d %s objects, want 1", len(list), what)
	}
	return list[0]
}

// workerEnv lists the environment variables cmd/worker/config.go reads: the second
// argument of its str/num/dur/boolean helpers, the third of its settingNum/settingDur
// helpers (whose second is the component's field) and every getenv("...") call.
func workerEnv(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../cmd/worker/config.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		fn, ok := call.Fun.(*ast.Ident)
		if !ok {
			return true
		}
		arg := -1
		switch fn.Name {
		case "str", "num", "dur", "boolean":
			arg = 1
		case "settingNum", "settingDur":
			arg = 2
		case "getenv":
			arg = 0
		}
		if arg >= 0 && len(call.Args) > arg {
			if lit, ok := call.Args[arg].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				names[s] = true
			}
		}
		return true
	})
	for _, must := range []string{"NATS_URL", "APINIZER_URL", "APINIZER_TOKEN_FILE", "METRICS_ADDR", "WORKER_SHUTDOWN_GRACE", "WORKER_STREAM_REPLICAS"} {
		if !names[must] {
			t.Fatalf("config.go parse found no %s among %v: has the helpers' shape changed?", must, names)
		}
	}
	return names
}

// workerDefaultShutdownGrace is config.go's default of WORKER_SHUTDOWN_GRACE.
const workerDefaultShutdownGrace = 30 * time.Second

// natsDrainBound is how long cmd/worker waits for its NATS connection to drain after the
// shutdown grace (the 10s shutdownCtx in main.go's run).
const natsDrainBound = 10 * time.Second

func TestKustomizeBuilds(t *testing.T) {
	envNames := workerEnv(t)
	for _, tc := range []struct {
		dir        string
		namespace  string
		replicas   int32
		streamR    string
		wantSecret bool
	}{
		{dir: "base", replicas: 2, streamR: "1", wantSecret: true},
		{dir: "overlays/production", namespace: "apiops", replicas: 3, streamR: "3"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			r := kustomizeBuild(t, tc.dir)
			d := one(t, r.deployments, "Deployment")
			pod := d.Spec.Template.Spec
			c := one(t, pod.Containers, "container")
			podLabels := d.Spec.Template.Labels

			t.Run("every namespaced object is in the overlay's namespace", func(t *testing.T) {
				for _, o := range r.all {
					if _, isNS := o.(*corev1.Namespace); isNS {
						if o.GetName() != tc.namespace {
							t.Errorf("Namespace %s, want %q", o.GetName(), tc.namespace)
						}
						continue
					}
					if o.GetNamespace() != tc.namespace {
						t.Errorf("%T %s in namespace %q, want %q", o, o.GetName(), o.GetNamespace(), tc.namespace)
					}
				}
			})

			// The environment the worker gets: env entries and the keys of envFrom ConfigMaps.
			env := map[string]string{}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef == nil {
					t.Fatalf("envFrom %+v: only ConfigMaps expected", ef)
				}
				cm := configMap(t, r, ef.ConfigMapRef.Name)
				for k, v := range cm.Data {
					env[k] = v
				}
			}
			for _, e := range c.Env {
				env[e.Name] = e.Value
				if e.ValueFrom != nil {
					if e.ValueFrom.SecretKeyRef == nil {
						t.Fatalf("env %s: only secretKeyRef expected", e.Name)
					}
					env[e.Name] = "<from Secret " + e.ValueFrom.SecretKeyRef.Name + ">"
				}
			}

			t.Run("env names are the worker's", func(t *testing.T) {
				for name := range env {
					if !envNames[name] {
						t.Errorf("env %s: cmd/worker/config.go reads no such variable", name)
					}
				}
				// The NATS credential is the NKey seed file of the Secret (issue 22: not an
				// environment variable), with the user's private inbox prefix.
				for _, name := range []string{"NATS_URL", "APINIZER_URL", "APINIZER_TOKEN_FILE", "METRICS_ADDR", "WORKER_SHUTDOWN_GRACE", "NATS_NKEY", "NATS_INBOX_PREFIX"} {
					if _, ok := env[name]; !ok {
						t.Errorf("env %s missing", name)
					}
				}
				for _, name := range []string{"APINIZER_ALLOW_INSECURE_HTTP", "APINIZER_TOKEN", "WORKER_DEV", "WORKER_DEV_SAMPLES", "WORKER_DEV_DATA_DIR", "NATS_PASSWORD", "NATS_TOKEN"} {
					if v, ok := env[name]; ok {
						t.Errorf("env %s=%q: never on Kubernetes", name, v)
					}
				}
				if u := env["APINIZER_URL"]; !strings.HasPrefix(u, "https://") {
					t.Errorf("APINIZER_URL %q: want https", u)
				}
				if got := env["WORKER_STREAM_REPLICAS"]; got != tc.streamR {
					t.Errorf("WORKER_STREAM_REPLICAS %q, want %q", got, tc.streamR)
				}
			})

			t.Run("the token is a file from the Secret", func(t *testing.T) {
				file := env["APINIZER_TOKEN_FILE"]
				var vol *corev1.Volume
				for _, m := range c.VolumeMounts {
					if path.Dir(file) == m.MountPath {
						if !m.ReadOnly || m.SubPath != "" {
							t.Errorf("mount %s: want read-only and no subPath (a subPath is never refreshed on rotation)", m.MountPath)
						}
						for i := range pod.Volumes {
							if pod.Volumes[i].Name == m.Name {
								vol = &pod.Volumes[i]
							}
						}
					}
				}
				if vol == nil || vol.Secret == nil {
					t.Fatalf("APINIZER_TOKEN_FILE %s is not in a mounted Secret volume", file)
				}
				found := false
				for _, it := range vol.Secret.Items {
					found = found || it.Path == path.Base(file)
				}
				if !found {
					t.Errorf("Secret volume %s has no item %s", vol.Name, path.Base(file))
				}
				if pod.SecurityContext.FSGroup == nil || vol.Secret.DefaultMode == nil || *vol.Secret.DefaultMode&0o040 == 0 {
					t.Errorf("the token must be readable by the pod's fsGroup")
				}
				keys := []string{}
				for _, it := range vol.Secret.Items {
					keys = append(keys, it.Key)
				}
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						keys = append(keys, e.ValueFrom.SecretKeyRef.Key)
						if e.ValueFrom.SecretKeyRef.Name != vol.Secret.SecretName {
							t.Errorf("env %s from Secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, vol.Secret.SecretName)
						}
					}
				}
				if !tc.wantSecret {
					if len(r.secrets) != 0 {
						t.Errorf("%d Secrets rendered: production manages the Secret out of band", len(r.secrets))
					}
					return
				}
				s := one(t, r.secrets, "Secret")
				if s.Name != vol.Secret.SecretName {
					t.Errorf("Secret %s, volume wants %s", s.Name, vol.Secret.SecretName)
				}
				for _, k := range keys {
					if _, ok := s.StringData[k]; !ok {
						t.Errorf("Secret %s has no key %s", s.Name, k)
					}
				}
			})

			t.Run("ports and probes are the worker's", func(t *testing.T) {
				_, port, err := net.SplitHostPort(env["METRICS_ADDR"])
				if err != nil {
					t.Fatalf("METRICS_ADDR %q: %v", env["METRICS_ADDR"], err)
				}
				p := one(t, c.Ports, "container port")
				if strconv.Itoa(int(p.ContainerPort)) != port || p.Name != "metrics" {
					t.Errorf("container port %s/%d, want metrics/%s (METRICS_ADDR)", p.Name, p.ContainerPort, port)
				}
				for _, pr := range []struct {
					name  string
					probe *corev1.Probe
					path  string
				}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
					if pr.probe == nil || pr.probe.HTTPGet == nil {
						t.Errorf("%s probe: want an HTTP GET", pr.name)
						continue
					}
					if pr.probe.HTTPGet.Path != pr.path || !portIs(pr.probe.HTTPGet.Port, p) {
						t.Errorf("%s probe GET %s on %s, want %s on %s", pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port.String(), pr.path, p.Name)
					}
				}
				svc := one(t, r.services, "Service")
				sp := one(t, svc.Spec.Ports, "Service port")
				if !portIs(sp.TargetPort, p) {
					t.Errorf("Service targetPort %s, want %s", sp.TargetPort.String(), p.Name)
				}
				if !selects(svc.Spec.Selector, podLabels) {
					t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, podLabels)
				}
			})

			t.Run("termination grace exceeds the shutdown grace and the drain", func(t *testing.T) {
				grace := workerDefaultShutdownGrace
				if s, ok := env["WORKER_SHUTDOWN_GRACE"]; ok {
					var err error
					if grace, err = time.ParseDuration(s); err != nil {
						t.Fatalf("WORKER_SHUTDOWN_GRACE %q: %v", s, err)
					}
				}
				if pod.TerminationGracePeriodSeconds == nil {
					t.Fatal("no terminationGracePeriodSeconds")
				}
				term := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
				if term <= grace+natsDrainBound {
					t.Errorf("terminationGracePeriodSeconds %s, want more than WORKER_SHUTDOWN_GRACE %s + NATS drain %s", term, grace, natsDrainBound)
				}
			})

			t.Run("replicas, resources and security context", func(t *testing.T) {
				if d.Spec.Replicas == nil || *d.Spec.Replicas < tc.replicas {
					t.Errorf("replicas %v, want at least %d", d.Spec.Replicas, tc.replicas)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
					t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
				}
				psc, sc := pod.SecurityContext, c.SecurityContext
				switch {
				case psc == nil || sc == nil:
					t.Fatal("pod and container security contexts required")
				case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot, sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
					t.Error("runAsNonRoot must be true")
				case psc.RunAsUser == nil || *psc.RunAsUser != 65532:
					t.Error("runAsUser must be 65532 (the image's apiops user)")
				case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
					t.Error("readOnlyRootFilesystem must be true")
				case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
					t.Error("allowPrivilegeEscalation must be false")
				case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
					t.Error("capabilities must drop ALL and add none")
				case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault,
					psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
					t.Error("seccompProfile must be RuntimeDefault")
				}
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Error("the worker never calls the Kubernetes API: automountServiceAccountToken false")
				}
			})

			t.Run("the PodDisruptionBudget covers the pods", func(t *testing.T) {
				pdb := one(t, r.pdbs, "PodDisruptionBudget")
				if !selects(pdb.Spec.Selector.MatchLabels, podLabels) || !selects(d.Spec.Selector.MatchLabels, podLabels) {
					t.Errorf("PDB selector %v, pods %v", pdb.Spec.Selector.MatchLabels, podLabels)
				}
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
				}
			})

			t.Run("the PodMonitor scrapes the pods as job apiops-worker", func(t *testing.T) {
				pm := one(t, r.podMonitors, "PodMonitor")
				if !selects(pm.Spec.Selector.MatchLabels, podLabels) {
					t.Errorf("PodMonitor selector %v, pods %v", pm.Spec.Selector.MatchLabels, podLabels)
				}
				ep := one(t, pm.Spec.PodMetricsEndpoints, "podMetricsEndpoint")
				if ep.Port == nil || *ep.Port != "metrics" || ep.Path != "/metrics" {
					t.Errorf("endpoint %+v, want port metrics path /metrics", ep)
				}
				// The alerts select job=~"apiops-worker.*".
				if job := podLabels[pm.Spec.JobLabel]; !strings.HasPrefix(job, "apiops-worker") {
					t.Errorf("jobLabel %q gives job %q, want apiops-worker...", pm.Spec.JobLabel, job)
				}
			})

			t.Run("the PrometheusRule holds the project's alerts", func(t *testing.T) {
				pr := one(t, r.rules, "PrometheusRule")
				alerts := 0
				for _, g := range pr.Spec.Groups {
					for _, rule := range g.Rules {
						if rule.Alert != "" {
							alerts++
							if !strings.Contains(rule.Expr.String(), "apiops") {
								t.Errorf("alert %s: %s", rule.Alert, rule.Expr.String())
							}
						}
					}
				}
				if alerts == 0 {
					t.Error("no alerts")
				}
			})

			t.Run("the dashboard ConfigMap is the Grafana dashboard", func(t *testing.T) {
				want, err := os.ReadFile("../grafana/apiops-worker.json")
				if err != nil {
					t.Fatal(err)
				}
				cm := configMap(t, r, "apiops-worker-dashboard")
				if cm.Data["apiops-worker.json"] != string(want) {
					t.Error("apiops-worker.json differs from deploy/grafana/apiops-worker.json")
				}
				if cm.Labels["grafana_dashboard"] != "1" {
					t.Error("label grafana_dashboard=1 missing")
				}
			})

			t.Run("KEDA scales the Deployment on the jobs consumer's backlog", func(t *testing.T) {
				so := one(t, r.scaledObjects, "ScaledObject")
				ref := so.Spec.ScaleTargetRef
				if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
					t.Errorf("scaleTargetRef %+v, want Deployment %s", ref, d.Name)
				}
				if so.Spec.MinReplicaCount == nil || *so.Spec.MinReplicaCount < tc.replicas || so.Spec.MaxReplicaCount == nil || *so.Spec.MaxReplicaCount <= *so.Spec.MinReplicaCount {
					t.Errorf("replicas %v..%v, want at least %d and room to grow", so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount, tc.replicas)
				}
				tr := one(t, so.Spec.Triggers, "trigger")
				m := tr.Metadata
				if tr.Type != "nats-jetstream" || m["stream"] != streams.Jobs || m["consumer"] != streams.Consumer {
					t.Errorf("trigger %s on %s/%s, want nats-jetstream on %s/%s", tr.Type, m["stream"], m["consumer"], streams.Jobs, streams.Consumer)
				}
				if n, err := strconv.Atoi(m["lagThreshold"]); err != nil || n < 1 {
					t.Errorf("lagThreshold %q: want a positive number", m["lagThreshold"])
				}
				if _, _, err := net.SplitHostPort(m["natsServerMonitoringEndpoint"]); err != nil || m["account"] == "" {
					t.Errorf("natsServerMonitoringEndpoint %q (want host:port), account %q", m["natsServerMonitoringEndpoint"], m["account"])
				}
			})
		})
	}
}

func configMap(t *testing.T, r *rendered, name string) *corev1.ConfigMap {
	t.Helper()
	for _, cm := range r.configMaps {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

func portIs(p intstr.IntOrString, cp corev1.ContainerPort) bool {
	if p.Type == intstr.String {
		return p.StrVal == cp.Name
	}
	return p.IntVal == cp.ContainerPort
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
