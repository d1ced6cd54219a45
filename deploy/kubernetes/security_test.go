package kubernetes

import (
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// secretName matches the name of a flag or environment variable that may hold a secret.
var secretName = regexp.MustCompile(`(?i)password|token|secret|nkey|seed|creds|credential`)

// TestSecretsAreFilesNeverArgumentsOrEnvironment: an argument shows in ps and
// /proc/<pid>/cmdline (and, with --pprof, /debug/pprof/cmdline); an environment
// variable in /proc/<pid>/environ and kubectl describe. Every secret the pods
// get is a file of a mounted Secret volume.
func TestSecretsAreFilesNeverArgumentsOrEnvironment(t *testing.T) {
	for _, dir := range []string{"base", "overlays/production"} {
		t.Run(dir, func(t *testing.T) {
			r := kustomizeBuild(t, dir)
			var secretValues []string
			for _, s := range r.secrets {
				for _, v := range s.StringData {
					secretValues = append(secretValues, v)
				}
				for _, v := range s.Data {
					secretValues = append(secretValues, string(v))
				}
			}
			for _, d := range r.deployments {
				pod := d.Spec.Template.Spec
				mounted := secretMounts(pod)
				for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
					env := map[string]string{}
					for _, ef := range c.EnvFrom {
						if ef.SecretRef != nil {
							t.Errorf("container %s: envFrom Secret %s puts secrets in the environment", c.Name, ef.SecretRef.Name)
						}
						if ef.ConfigMapRef != nil {
							for k, v := range configMap(t, r, ef.ConfigMapRef.Name).Data {
								env[k] = v
							}
						}
					}
					for _, e := range c.Env {
						if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
							t.Errorf("container %s: env %s comes from Secret %s: mount it as a file", c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name)
						}
						env[e.Name] = e.Value
					}
					for i, arg := range slices.Concat(c.Command, c.Args) {
						if name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "="); strings.HasPrefix(arg, "-") && secretName.MatchString(name) && !strings.HasSuffix(name, "-file") {
							t.Errorf("container %s: argument %d %q takes a secret value", c.Name, i, arg)
						}
						for _, v := range secretValues {
							if strings.Contains(arg, v) {
								t.Errorf("container %s: argument %d holds a value of the Secret", c.Name, i)
							}
						}
					}
					for name, value := range env {
						for _, v := range secretValues {
							if strings.Contains(value, v) {
								t.Errorf("container %s: env %s holds a value of the Secret", c.Name, name)
							}
						}
						if secretName.MatchString(name) && !mounted[path.Dir(value)] {
							t.Errorf("container %s: env %s=%q is not a file of a mounted Secret", c.Name, name, value)
						}
					}
					if _, ok := env["NATS_NKEY"]; !ok && c.Name == "worker" {
						t.Errorf("container %s: no NATS_NKEY file", c.Name)
					}
				}
			}
		})
	}
}

// secretMounts returns the mount paths of the pod's Secret volumes.
func secretMounts(pod corev1.PodSpec) map[string]bool {
	secretVolumes := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = true
		}
	}
	paths := map[string]bool{}
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		for _, m := range c.VolumeMounts {
			if secretVolumes[m.Name] {
				paths[m.MountPath] = true
			}
		}
	}
	return paths
}

// TestNetworkPolicyAdmitsPrometheusAndReachesOnlyNATSApinizerAndDNS checks the
// worker's NetworkPolicy: it selects the worker pods, restricts both
// directions, admits only Prometheus to the metrics port, and lets the pods
// reach DNS, NATS on NATS_URL's port and Apinizer on APINIZER_URL's, nothing
// else.
func TestNetworkPolicyAdmitsPrometheusAndReachesOnlyNATSApinizerAndDNS(t *testing.T) {
	for _, tc := range []struct {
		dir           string
		natsNamespace string
	}{
		{dir: "base"},
		{dir: "overlays/production", natsNamespace: "nats"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			r := kustomizeBuild(t, tc.dir)
			np := one(t, r.networkPolicies, "NetworkPolicy")
			d := one(t, r.deployments, "Deployment")
			c := one(t, d.Spec.Template.Spec.Containers, "container")
			ref := one(t, c.EnvFrom, "envFrom").ConfigMapRef
			if ref == nil {
				t.Fatal("envFrom: want the worker's ConfigMap")
			}
			env := configMap(t, r, ref.Name).Data

			if !selects(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
				t.Errorf("podSelector %v does not select the worker pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
			}
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
			}

			in := one(t, np.Spec.Ingress, "ingress rule")
			metrics := one(t, c.Ports, "container port")
			if p := one(t, in.Ports, "ingress port"); p.Port == nil || !portIs(*p.Port, metrics) {
				t.Errorf("ingress port %v, want the metrics port", p.Port)
			}
			if len(in.From) == 0 {
				t.Error("ingress from anywhere, want Prometheus only")
			}
			for _, peer := range in.From {
				if peer.IPBlock != nil || peer.PodSelector == nil || peer.PodSelector.MatchLabels["app.kubernetes.io/name"] != "prometheus" {
					t.Errorf("ingress from %+v, want Prometheus pods only", peer)
				}
			}

			if len(np.Spec.Egress) != 3 {
				t.Fatalf("%d egress rules, want 3: DNS, NATS, Apinizer", len(np.Spec.Egress))
			}
			natsURL, err := url.Parse(strings.Split(env["NATS_URL"], ",")[0])
			if err != nil {
				t.Fatal(err)
			}
			apinizerURL, err := url.Parse(env["APINIZER_URL"])
			if err != nil {
				t.Fatal(err)
			}
			apinizerPort := apinizerURL.Port()
			if apinizerPort == "" {
				apinizerPort = "443"
			}
			dns, nats, apinizer := np.Spec.Egress[0], np.Spec.Egress[1], np.Spec.Egress[2]
			if got := egressPorts(dns); !slices.Equal(got, []string{"UDP/53", "TCP/53"}) {
				t.Errorf("DNS rule ports %v, want UDP/53 and TCP/53", got)
			}
			if peer := one(t, dns.To, "DNS peer"); peer.PodSelector == nil || peer.PodSelector.MatchLabels["k8s-app"] != "kube-dns" ||
				peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "kube-system" {
				t.Errorf("DNS rule to %+v, want kube-dns in kube-system", peer)
			}
			if got := egressPorts(nats); !slices.Equal(got, []string{"TCP/" + natsURL.Port()}) {
				t.Errorf("NATS rule ports %v, want TCP/%s (NATS_URL %s)", got, natsURL.Port(), env["NATS_URL"])
			}
			peer := one(t, nats.To, "NATS peer")
			if peer.PodSelector == nil || peer.PodSelector.MatchLabels["app.kubernetes.io/name"] != "nats" {
				t.Errorf("NATS rule to %+v, want the nats pods", peer)
			}
			if tc.natsNamespace == "" && peer.NamespaceSelector != nil {
				t.Errorf("NATS rule to namespaces %v, want the policy's own", peer.NamespaceSelector)
			}
			if tc.natsNamespace != "" && (peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != tc.natsNamespace) {
				t.Errorf("NATS rule to namespaces %v, want %s", peer.NamespaceSelector, tc.natsNamespace)
			}
			if got := egressPorts(apinizer); !slices.Equal(got, []string{"TCP/" + apinizerPort}) {
				t.Errorf("Apinizer rule ports %v, want TCP/%s (APINIZER_URL %s)", got, apinizerPort, env["APINIZER_URL"])
			}
			if peer := one(t, apinizer.To, "Apinizer peer"); peer.IPBlock == nil {
				t.Errorf("Apinizer rule to %+v, want an ipBlock", peer)
			}
		})
	}
}

// egressPorts lists a rule's ports as protocol/port; a rule without ports
// (every port) lists "any".
func egressPorts(rule networkingv1.NetworkPolicyEgressRule) []string {
	if len(rule.Ports) == 0 {
		return []string{"any"}
	}
	var out []string
	for _, p := range rule.Ports {
		proto := "TCP"
		if p.Protocol != nil {
			proto = string(*p.Protocol)
		}
		port := "any"
		if p.Port != nil {
			port = p.Port.String()
		}
		if p.EndPort != nil {
			port += "-" + strconv.Itoa(int(*p.EndPort))
		}
		out = append(out, proto+"/"+port)
	}
	return out
}
