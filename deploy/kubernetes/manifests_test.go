// Package kubernetes_test checks deploy/kubernetes: every manifest decodes
// strictly into the upstream API types, the pod has the shape and the
// security the README promises (a native sidecar, non-root, no
// capabilities, Pod Security "restricted"), the ConfigMap's config passes
// the real `qodwatch check`, and (runas_test.go) the binary started as the
// pod would start it comes up and measures.
package kubernetes_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/pod-security-admission/api"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

var kinds = deploytest.KubernetesKinds

// manifests is every object of every YAML file under deploy/kubernetes.
type manifests struct {
	objs []deploytest.Object
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	var m manifests
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && path == "fleet" {
			return filepath.SkipDir // the StatefulSet of shards: fleet/fleet_test.go
		}
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		objs, err := deploytest.DecodeManifestFile(path, kinds)
		if err != nil {
			return err
		}
		m.objs = append(m.objs, objs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// one returns the only object of type T.
func one[T any](t *testing.T, m manifests) *T {
	t.Helper()
	var found []*T
	for _, o := range m.objs {
		if v, ok := o.Value.(*T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %T in deploy/kubernetes, have %d", new(T), len(found))
	}
	return found[0]
}

func (m manifests) deployment(t *testing.T) *appsv1.Deployment { return one[appsv1.Deployment](t, m) }

// sidecar is the qodwatch container of the pod.
func sidecar(t *testing.T, spec *corev1.PodSpec) *corev1.Container {
	t.Helper()
	return deploytest.Container(t, spec.InitContainers, "qodwatch")
}

// TestManifestsDecodeStrictly decodes every manifest into its upstream
// type and checks that the kustomizations reach every file exactly once.
func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	have := map[string]int{}
	files := map[string]bool{}
	for _, o := range m.objs {
		have[o.Kind]++
		files[o.File] = true
	}
	for kind, n := range map[string]int{"ConfigMap": 1, "PersistentVolumeClaim": 1, "Deployment": 1, "Service": 1, "PodMonitor": 1, "Kustomization": 2} {
		if have[kind] != n {
			t.Errorf("%d %s, want %d", have[kind], kind, n)
		}
	}
	// Walk the kustomizations from the top one as kustomize does.
	reached := map[string]int{}
	var walk func(dir string)
	walk = func(dir string) {
		kf := filepath.Join(dir, "kustomization.yaml")
		reached[kf]++
		objs, err := deploytest.DecodeManifestFile(kf, kinds)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range objs[0].Value.(*deploytest.Kustomization).Resources {
			p := filepath.Join(dir, r)
			if fi, err := os.Stat(p); err != nil {
				t.Errorf("%s: resource %s: %v", kf, r, err)
			} else if fi.IsDir() {
				walk(p)
			} else {
				reached[p]++
			}
		}
	}
	walk(".")
	for f := range files {
		if reached[f] != 1 {
			t.Errorf("%s is reached %d times from kustomization.yaml, want once", f, reached[f])
		}
	}
}

// TestStrictDecodeRejectsTypos is the check that the decoding above can
// fail: the Deployment with one field misspelt, with a field's case
// changed, or with a field given twice must not decode.
func TestStrictDecodeRejectsTypos(t *testing.T) {
	data, err := os.ReadFile("base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deploytest.DecodeManifests("base/deployment.yaml", data, kinds); err != nil {
		t.Fatalf("the file as it is: %v", err)
	}
	for name, edit := range map[string][3]string{ // from, to, what the error names
		"misspelt":   {"readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", "readOnlyRootFilesytem"},
		"wrong case": {"runAsNonRoot: true", "runAsNonroot: true", "runAsNonroot"},
		"twice":      {"runAsNonRoot: true", "runAsNonRoot: true\n        runAsNonRoot: false", `"runAsNonRoot" already set`},
		"misplaced":  {"          args: [run,", "          sysctls: []\n          args: [run,", "initContainers[0].sysctls"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(string(data), edit[0], edit[1], 1)
			if bad == string(data) {
				t.Fatalf("%q is not in the file", edit[0])
			}
			_, err := deploytest.DecodeManifests("base/deployment.yaml", []byte(bad), kinds)
			if err == nil || !strings.Contains(err.Error(), edit[2]) {
				t.Fatalf("with %q: error %v, want one naming %s", edit[1], err, edit[2])
			}
		})
	}
	if _, err := deploytest.DecodeManifests("x.yaml", []byte("apiVersion: v1\nkind: Pod\n"), kinds); err == nil {
		t.Error("a kind with no Go type decoded")
	}
}

// TestPodIsANonRootNativeSidecar checks what issue 9 asks of the pod.
func TestPodIsANonRootNativeSidecar(t *testing.T) {
	m := loadManifests(t)
	d := m.deployment(t)
	spec := &d.Spec.Template.Spec
	qw := sidecar(t, spec)
	if qw.RestartPolicy == nil || *qw.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("qodwatch is an init container without restartPolicy: Always: not a native sidecar")
	}
	if len(spec.Containers) == 0 {
		t.Error("no application container beside the sidecar")
	}
	for _, c := range spec.Containers {
		if c.Name == "qodwatch" || strings.Contains(c.Image, "qodwatch") {
			t.Errorf("container %s runs qodwatch as an ordinary container", c.Name)
		}
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Error("want replicas 1 and strategy Recreate: two pods would share the state and buy twice")
	}

	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Fatal("pod securityContext.runAsNonRoot is not true")
	}
	if psc.RunAsUser == nil || *psc.RunAsUser == 0 || psc.RunAsGroup == nil || *psc.RunAsGroup == 0 || psc.FSGroup == nil {
		t.Fatalf("pod securityContext wants non-zero runAsUser, runAsGroup and an fsGroup: %+v", psc)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod seccompProfile is not RuntimeDefault")
	}
	lo, hi := pingGroupRange(t, spec)
	if *psc.RunAsGroup < lo || *psc.RunAsGroup > hi {
		t.Errorf("net.ipv4.ping_group_range %d-%d leaves out runAsGroup %d: no ICMP", lo, hi, *psc.RunAsGroup)
	}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true", c.Name)
			continue
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("container %s: capabilities %+v, want drop [ALL] and nothing added", c.Name, sc.Capabilities)
		}
		if sc.RunAsUser != nil || sc.RunAsGroup != nil || sc.Privileged != nil {
			t.Errorf("container %s overrides the pod's user or privileges", c.Name)
		}
	}

	// Credentials come from the Secret's files, readable by the group only.
	for _, e := range qw.Env {
		if e.Value != "" || (e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil) {
			t.Errorf("env %s: a value in the manifest or from a Secret; credentials come from files", e.Name)
		}
	}
	secrets := volume(t, spec, qw, "secrets")
	if secrets.vol.Secret == nil || secrets.vol.Secret.DefaultMode == nil {
		t.Fatal("volume secrets is not a Secret with a defaultMode")
	}
	if mode := *secrets.vol.Secret.DefaultMode; mode&0o040 == 0 || mode&0o027 != 0 {
		t.Errorf("secret defaultMode %#o: want readable by the group (fsGroup), nothing for others", mode)
	}
	state := volume(t, spec, qw, "state")
	if state.vol.PersistentVolumeClaim == nil || state.mount.ReadOnly {
		t.Error("volume state is not a writable PersistentVolumeClaim")
	}

	// Probes: startup and readiness on /-/ready, liveness on /-/healthy,
	// each on a port the container has.
	for name, p := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"startup": {qw.StartupProbe, "/-/ready"}, "readiness": {qw.ReadinessProbe, "/-/ready"}, "liveness": {qw.LivenessProbe, "/-/healthy"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s probe: want httpGet %s", name, p.path)
			continue
		}
		if containerPort(qw, p.probe.HTTPGet.Port.String()) == 0 {
			t.Errorf("%s probe: port %s is not the container's", name, p.probe.HTTPGet.Port.String())
		}
	}

	// The Service and the PodMonitor find the pod and its ports.
	svc := one[corev1.Service](t, m)
	pm := one[monitoringv1.PodMonitor](t, m)
	labels := d.Spec.Template.Labels
	for k, v := range svc.Spec.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%s does not select the pod", k, v)
		}
	}
	for k, v := range pm.Spec.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("PodMonitor selector %s=%s does not select the pod", k, v)
		}
	}
	for _, p := range svc.Spec.Ports {
		if containerPort(qw, p.TargetPort.String()) == 0 {
			t.Errorf("Service port %s: target %s is not the sidecar's", p.Name, p.TargetPort.String())
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil ||
		containerPort(qw, *pm.Spec.PodMetricsEndpoints[0].Port) != containerPort(qw, "web") {
		t.Error("the PodMonitor does not scrape the sidecar's web port")
	}
}

// pingGroupRange is the pod's net.ipv4.ping_group_range.
func pingGroupRange(t *testing.T, spec *corev1.PodSpec) (lo, hi int64) {
	t.Helper()
	for _, s := range spec.SecurityContext.Sysctls {
		if s.Name != "net.ipv4.ping_group_range" {
			continue
		}
		f := strings.Fields(s.Value)
		if len(f) == 2 {
			lo, err1 := strconv.ParseInt(f[0], 10, 64)
			hi, err2 := strconv.ParseInt(f[1], 10, 64)
			if err1 == nil && err2 == nil {
				return lo, hi
			}
		}
		t.Fatalf("net.ipv4.ping_group_range %q: want two gids", s.Value)
	}
	t.Fatal("no sysctl net.ipv4.ping_group_range: unprivileged ICMP is off in the pod")
	return 0, 0
}

type mountedVolume struct {
	vol   *corev1.Volume
	mount *corev1.VolumeMount
}

func volume(t *testing.T, spec *corev1.PodSpec, c *corev1.Container, name string) mountedVolume {
	t.Helper()
	var mv mountedVolume
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			mv.vol = &spec.Volumes[i]
		}
	}
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].Name == name {
			mv.mount = &c.VolumeMounts[i]
		}
	}
	if mv.vol == nil || mv.mount == nil {
		t.Fatalf("no volume %s mounted in %s", name, c.Name)
	}
	return mv
}

// containerPort resolves a port given by name or number.
func containerPort(c *corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return p.ContainerPort
		}
	}
	return 0
}

// TestPodSecurityStandard runs the Pod Security admission's own checks:
// the pod meets "restricted" at the latest version, its sysctl included.
// Two changes that the old manifest had or that are easy to make must
// fail even "baseline", so the evaluation is known to be able to fail.
func TestPodSecurityStandard(t *testing.T) {
	d := loadManifests(t).deployment(t)
	check := func(level api.Level, spec *corev1.PodSpec) error {
		return deploytest.PodSecurity(level, &d.Spec.Template.ObjectMeta, spec)
	}
	if err := check(api.LevelRestricted, &d.Spec.Template.Spec); err != nil {
		t.Error(err)
	}
	netRaw := d.Spec.Template.Spec.DeepCopy()
	sidecar(t, netRaw).SecurityContext.Capabilities.Add = []corev1.Capability{"NET_RAW"}
	unsafeSysctl := d.Spec.Template.Spec.DeepCopy()
	unsafeSysctl.SecurityContext.Sysctls = append(unsafeSysctl.SecurityContext.Sysctls, corev1.Sysctl{Name: "net.core.somaxconn", Value: "1024"})
	for name, spec := range map[string]*corev1.PodSpec{"add NET_RAW": netRaw, "an unsafe sysctl": unsafeSysctl} {
		if check(api.LevelBaseline, spec) == nil {
			t.Errorf("with %s the pod still meets baseline: the check cannot fail", name)
		}
	}
}

// TestConfigMapPassesCheck runs the real `qodwatch check` on the
// ConfigMap's config, with the Secret's files where the pod mounts them
// (mapped into a temporary directory, the only change).
func TestConfigMapPassesCheck(t *testing.T) {
	m := loadManifests(t)
	spec := &m.deployment(t).Spec.Template.Spec
	qw := sidecar(t, spec)
	dir := t.TempDir()
	bin := deploytest.BuildQodwatch(t, dir)
	pod := layOutPod(t, m, dir, -1, -1)
	args := pod.args(qw)
	if len(args) == 0 || args[0] != "run" {
		t.Fatalf("sidecar args %q: want run ...", qw.Args)
	}
	configFile := ""
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			configFile = v
		}
	}
	if configFile == "" {
		t.Fatalf("sidecar args %q: no --config.file=", qw.Args)
	}
	out, err := exec.Command(bin, "check", configFile).CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte(": OK:")) {
		t.Fatalf("qodwatch check %s: %v\n%s", configFile, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
	// Every path the config names lies on one of the pod's volumes.
	var cfg struct {
		API struct {
			Auth map[string]any `yaml:"auth"`
		} `yaml:"api"`
		Notifications map[string]any `yaml:"notifications"`
		StateDir      string         `yaml:"state_dir"`
	}
	if err := yaml.Unmarshal([]byte(one[corev1.ConfigMap](t, m).Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	secretMount := volume(t, spec, qw, "secrets").mount.MountPath
	for _, f := range []any{cfg.API.Auth["client_secret_file"], cfg.API.Auth["private_key_file"], cfg.Notifications["token_file"]} {
		if s, _ := f.(string); !strings.HasPrefix(s, secretMount+"/") {
			t.Errorf("config names secret file %v outside the Secret's mount %s", f, secretMount)
		}
	}
	if cfg.StateDir != volume(t, spec, qw, "state").mount.MountPath {
		t.Errorf("state_dir %s is not the state volume's mount", cfg.StateDir)
	}
}

// TestKustomizeBuilds builds both kustomizations with kubectl's kustomize
// and decodes what it prints as strictly as the files.
func TestKustomizeBuilds(t *testing.T) {
	kubectl := deploytest.RequireTool(t, "kubectl")
	for dir, want := range map[string][]string{
		".":    {"ConfigMap", "PersistentVolumeClaim", "Service", "Deployment", "PodMonitor"},
		"base": {"ConfigMap", "PersistentVolumeClaim", "Service", "Deployment"},
	} {
		out, err := exec.Command(kubectl, "kustomize", dir).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
		}
		objs, err := deploytest.DecodeManifests("kustomize "+dir, out, kinds)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.Kind)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("kubectl kustomize %s: kinds %v, want %v", dir, got, want)
		}
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// pod is the pod's volumes laid out in a directory as the kubelet lays
// them out, and the mapping from the pod's mount paths to it.
type pod struct {
	mounts *strings.Replacer
	config string // the ConfigMap's config.yaml, paths mapped
	root   string
}

func (p pod) args(c *corev1.Container) []string {
	var out []string
	for _, a := range c.Args {
		out = append(out, p.mounts.Replace(a))
	}
	return out
}

// testSecrets are the Secret's files: the names the config refers to.
func testSecrets(t *testing.T) map[string][]byte {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(deploytest.RepoRoot(t), "config/testdata/secrets/test-pop-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"client-secret": []byte("client-secret-of-the-pod-test\n"),
		"pop-key.pem":   key,
		"notify-token":  []byte("notify-token-of-the-pod-test-0123456789\n"),
	}
}

// layOutPod writes the sidecar's volumes under root as the kubelet would:
// the ConfigMap's keys as files, the Secret's keys with its defaultMode,
// owned by root and group fsGroup, the state volume root:fsGroup with the
// setgid bit and group write. With fsGroup -1 it only writes the files
// (no root needed); with secretMode -1 the Secret's defaultMode is used. edit, if given, changes the config text (addresses).
func layOutPod(t *testing.T, m manifests, root string, fsGroup int, secretMode int, edit ...func(string) string) pod {
	t.Helper()
	spec := &m.deployment(t).Spec.Template.Spec
	qw := sidecar(t, spec)
	cm := one[corev1.ConfigMap](t, m)
	var pairs []string
	dirs := map[string]string{}
	for _, vm := range qw.VolumeMounts {
		dir := filepath.Join(root, "volumes", vm.Name)
		pairs = append(pairs, vm.MountPath, dir)
		dirs[vm.Name] = dir
	}
	p := pod{mounts: strings.NewReplacer(pairs...), root: root}
	owned := fsGroup >= 0
	// config: a ConfigMap volume, files 0644 (its defaultMode) owned by root.
	cfgVol := volume(t, spec, qw, "config")
	if cfgVol.vol.ConfigMap == nil || cfgVol.vol.ConfigMap.Name != cm.Name {
		t.Fatalf("volume config is not the ConfigMap %s", cm.Name)
	}
	text, ok := cm.Data["config.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no config.yaml")
	}
	for _, e := range edit {
		text = e(text)
	}
	p.config = p.mounts.Replace(text)
	mustMkdir(t, dirs["config"], 0o755, owned, 0, 0)
	mustWrite(t, filepath.Join(dirs["config"], "config.yaml"), []byte(p.config), 0o644, owned, 0, 0)
	// secrets: root:fsGroup, the Secret's defaultMode.
	if secretMode < 0 {
		secretMode = int(*volume(t, spec, qw, "secrets").vol.Secret.DefaultMode)
	}
	mustMkdir(t, dirs["secrets"], 0o755, owned, 0, fsGroup)
	for name, data := range testSecrets(t) {
		mustWrite(t, filepath.Join(dirs["secrets"], name), data, fs.FileMode(secretMode), owned, 0, fsGroup)
	}
	// state: what the kubelet makes of a fresh volume with fsGroup.
	mustMkdir(t, dirs["state"], fs.ModeSetgid|0o775, owned, 0, fsGroup)
	return p
}

func mustMkdir(t *testing.T, dir string, mode fs.FileMode, owned bool, uid, gid int) {
	t.Helper()
	if owned {
		deploytest.MkdirOwned(t, dir, mode, uid, gid)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path string, data []byte, mode fs.FileMode, owned bool, uid, gid int) {
	t.Helper()
	if owned {
		deploytest.WriteFile(t, path, data, mode, uid, gid)
		return
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
