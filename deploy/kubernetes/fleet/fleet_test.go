// Package fleet_test checks deploy/kubernetes/fleet, the StatefulSet of
// shards: every manifest decodes strictly into its upstream type, the
// kustomization reaches each file once, the shard count agrees with the
// replicas, each pod gets its own state volume and finds its index in its
// hostname, the pod meets Pod Security "restricted", and the ConfigMap's
// config passes the real `qodwatch check`.
package fleet_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/pod-security-admission/api"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

var kinds = deploytest.KubernetesKinds

// fleet is every object of the kustomization, each file reached once.
type fleet struct {
	sts *appsv1.StatefulSet
	svc *corev1.Service
	cm  *corev1.ConfigMap
	pdb *policyv1.PodDisruptionBudget
	pm  *monitoringv1.PodMonitor
}

func load(t *testing.T) fleet {
	t.Helper()
	objs, err := deploytest.DecodeManifestFile("kustomization.yaml", kinds)
	if err != nil {
		t.Fatal(err)
	}
	var f fleet
	files, _ := filepath.Glob("*.yaml")
	reached := map[string]int{"kustomization.yaml": 1}
	for _, r := range objs[0].Value.(*deploytest.Kustomization).Resources {
		reached[r]++
		got, err := deploytest.DecodeManifestFile(r, kinds)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range got {
			switch v := o.Value.(type) {
			case *appsv1.StatefulSet:
				f.sts = v
			case *corev1.Service:
				f.svc = v
			case *corev1.ConfigMap:
				f.cm = v
			case *policyv1.PodDisruptionBudget:
				f.pdb = v
			case *monitoringv1.PodMonitor:
				f.pm = v
			}
		}
	}
	for _, file := range files {
		if reached[file] != 1 {
			t.Errorf("%s is reached %d times from kustomization.yaml, want once", file, reached[file])
		}
	}
	if f.sts == nil || f.svc == nil || f.cm == nil || f.pdb == nil || f.pm == nil {
		t.Fatalf("want a StatefulSet, a Service, a ConfigMap, a PodDisruptionBudget and a PodMonitor: %+v", f)
	}
	return f
}

func TestFleetShards(t *testing.T) {
	f := load(t)
	spec := &f.sts.Spec.Template.Spec
	qw := deploytest.Container(t, spec.Containers, "qodwatch")

	// --shard.count is the set's size; the index comes from the hostname.
	count := -1
	for _, a := range qw.Args {
		if v, ok := strings.CutPrefix(a, "--shard.count="); ok {
			count, _ = strconv.Atoi(v)
		}
		if strings.HasPrefix(a, "--shard.index") {
			t.Errorf("arg %s: every pod of the set would be the same shard; leave the index to the hostname", a)
		}
	}
	if f.sts.Spec.Replicas == nil || int(*f.sts.Spec.Replicas) != count || count < 2 {
		t.Errorf("replicas %v, --shard.count %d: they must agree (and be 2 or more)", f.sts.Spec.Replicas, count)
	}

	// Each shard its own state volume, mounted where the config keeps state.
	var state *corev1.PersistentVolumeClaim
	for i := range f.sts.Spec.VolumeClaimTemplates {
		if f.sts.Spec.VolumeClaimTemplates[i].Name == "state" {
			state = &f.sts.Spec.VolumeClaimTemplates[i]
		}
	}
	if state == nil {
		t.Fatal("no volumeClaimTemplate state: the shards would share (or lose) their state")
	}
	mounted := ""
	for _, vm := range qw.VolumeMounts {
		if vm.Name == "state" && !vm.ReadOnly {
			mounted = vm.MountPath
		}
	}
	if mounted == "" || !strings.Contains(f.cm.Data["config.yaml"], "state_dir: "+mounted) {
		t.Errorf("the state volume is mounted at %q, which is not the config's state_dir", mounted)
	}

	// The headless Service gives each pod its name; selectors find the pods.
	if f.svc.Spec.ClusterIP != corev1.ClusterIPNone || f.sts.Spec.ServiceName != f.svc.Name {
		t.Errorf("serviceName %q, Service %q with clusterIP %q: want the headless Service", f.sts.Spec.ServiceName, f.svc.Name, f.svc.Spec.ClusterIP)
	}
	labels := f.sts.Spec.Template.Labels
	selects := func(what string, sel map[string]string) {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not select the shards", what, k, v)
			}
		}
	}
	selects("Service", f.svc.Spec.Selector)
	selects("PodDisruptionBudget", f.pdb.Spec.Selector.MatchLabels)
	selects("PodMonitor", f.pm.Spec.Selector.MatchLabels)
	if f.pdb.Spec.MaxUnavailable == nil || f.pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Error("the PodDisruptionBudget should let one shard go at a time")
	}

	// Pod Security restricted, as the sidecar's pod; ICMP for its group.
	if err := deploytest.PodSecurity(api.LevelRestricted, &f.sts.Spec.Template.ObjectMeta, spec); err != nil {
		t.Error(err)
	}
	gid := *spec.SecurityContext.RunAsGroup
	if !slices.ContainsFunc(spec.SecurityContext.Sysctls, func(s corev1.Sysctl) bool {
		var lo, hi int64
		f := strings.Fields(s.Value)
		if len(f) == 2 {
			lo, _ = strconv.ParseInt(f[0], 10, 64)
			hi, _ = strconv.ParseInt(f[1], 10, 64)
		}
		return s.Name == "net.ipv4.ping_group_range" && lo <= gid && gid <= hi
	}) {
		t.Errorf("no net.ipv4.ping_group_range covering gid %d", gid)
	}
	if qw.ReadinessProbe == nil || qw.ReadinessProbe.HTTPGet == nil || qw.ReadinessProbe.HTTPGet.Path != "/-/ready" {
		t.Error("no readiness probe on /-/ready")
	}
}

// TestFleetConfigPassesCheck runs the real `qodwatch check` on the
// ConfigMap's config, its secret files laid out in a temporary directory.
func TestFleetConfigPassesCheck(t *testing.T) {
	f := load(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"client-secret", "inventory-token"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte("example\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.NewReplacer("/run/secrets/qodwatch", secrets, "/var/lib/qodwatch", filepath.Join(dir, "state")).Replace(f.cm.Data["config.yaml"])
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := deploytest.BuildQodwatch(t, dir)
	out, err := exec.Command(bin, "check", file).CombinedOutput()
	if err != nil || strings.Contains(string(out), "warning") {
		t.Fatalf("qodwatch check: %v\n%s", err, out)
	}
}
