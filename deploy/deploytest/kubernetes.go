package deploytest

import (
	"fmt"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
)

// KubernetesKinds are the kinds deploy/kubernetes may hold, each with the
// Go type the API server (or, for PodMonitor, the Prometheus operator's
// CRD) decodes it into.
var KubernetesKinds = Kinds{
	"v1 ConfigMap":                                  func() any { return new(corev1.ConfigMap) },
	"v1 PersistentVolumeClaim":                      func() any { return new(corev1.PersistentVolumeClaim) },
	"v1 Service":                                    func() any { return new(corev1.Service) },
	"apps/v1 Deployment":                            func() any { return new(appsv1.Deployment) },
	"apps/v1 StatefulSet":                           func() any { return new(appsv1.StatefulSet) },
	"policy/v1 PodDisruptionBudget":                 func() any { return new(policyv1.PodDisruptionBudget) },
	"monitoring.coreos.com/v1 PodMonitor":           func() any { return new(monitoringv1.PodMonitor) },
	"kustomize.config.k8s.io/v1beta1 Kustomization": func() any { return new(Kustomization) },
}

// PodSecurity runs Pod Security admission's own checks on a pod template
// at level (latest version): nil when the pod meets it.
func PodSecurity(level psaapi.Level, meta *metav1.ObjectMeta, spec *corev1.PodSpec) error {
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		return err
	}
	r := psapolicy.AggregateCheckResults(eval.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, meta, spec))
	if !r.Allowed {
		return fmt.Errorf("Pod Security %s: %s: %s", level, r.ForbiddenReason(), r.ForbiddenDetail())
	}
	return nil
}

// Container returns the container called name in list, or fails t.
func Container(t testing.TB, list []corev1.Container, name string) *corev1.Container {
	t.Helper()
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	t.Fatalf("no container named %s", name)
	return nil
}
