package kubernetes_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/qodwatch/qodwatch/deploy/deploytest"
)

// TestReadmeSecretSteps runs the README's Kubernetes steps that make the
// Secret, as written, in an empty directory (kubectl with --dry-run=client,
// no cluster needed), and checks that the Secret they make is the one the
// pod mounts, with exactly the files the ConfigMap's config reads.
func TestReadmeSecretSteps(t *testing.T) {
	kubectl := deploytest.RequireTool(t, "kubectl")
	readme, err := os.ReadFile(filepath.Join(deploytest.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "### On Kubernetes")
	if !ok {
		t.Fatal(`README has no "### On Kubernetes" section`)
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("the README's Kubernetes section has no sh block")
	}
	var steps []string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "kubectl create secret"):
			line = strings.Replace(line, "kubectl", kubectl, 1) + " --dry-run=client -o yaml > secret.yaml"
		case strings.HasPrefix(line, "install ") || strings.HasPrefix(line, "cp ") || strings.HasPrefix(line, "echo "):
		default:
			continue
		}
		steps = append(steps, line)
	}
	if len(steps) == 0 || !strings.Contains(steps[len(steps)-1], "secret.yaml") {
		t.Fatalf("no kubectl create secret step in:\n%s", block)
	}
	dir := t.TempDir()
	key, err := os.ReadFile(filepath.Join(deploytest.RepoRoot(t), "config/testdata/secrets/test-pop-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pop-key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("/bin/sh", "-ec", strings.Join(steps, "\n"))
	sh.Dir = dir
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("README steps:\n%s\n%v: %s", strings.Join(steps, "\n"), err, out)
	}
	objs, err := deploytest.DecodeManifestFile(filepath.Join(dir, "secret.yaml"), deploytest.Kinds{"v1 Secret": func() any { return new(corev1.Secret) }})
	if err != nil || len(objs) != 1 {
		t.Fatalf("the Secret the README makes: %v", err)
	}
	secret := objs[0].Value.(*corev1.Secret)

	m := loadManifests(t)
	spec := &m.deployment(t).Spec.Template.Spec
	qw := sidecar(t, spec)
	mv := volume(t, spec, qw, "secrets")
	if secret.Name != mv.vol.Secret.SecretName {
		t.Errorf("the README makes Secret %q, the pod mounts %q", secret.Name, mv.vol.Secret.SecretName)
	}
	var cfg struct {
		API struct {
			Auth map[string]string `yaml:"auth"`
		} `yaml:"api"`
		Notifications map[string]string `yaml:"notifications"`
	}
	if err := yaml.Unmarshal([]byte(one[corev1.ConfigMap](t, m).Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	var want, have []string
	for _, f := range []string{cfg.API.Auth["client_secret_file"], cfg.API.Auth["private_key_file"], cfg.Notifications["token_file"]} {
		if f != "" {
			want = append(want, path.Base(f))
		}
	}
	for k := range secret.Data {
		have = append(have, k)
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(want, have) {
		t.Errorf("the README's Secret has keys %v, the config reads %v", have, want)
	}
}
