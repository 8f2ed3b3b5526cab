package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/config"
	"github.com/latchkeyhq/latchkey/flow"
)

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas     int `yaml:"replicas"`
		MinAvailable int `yaml:"minAvailable"`
		Selector     struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		// Service: a plain map
		Ports []struct {
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
					RunAsUser    int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []struct {
					Image string   `yaml:"image"`
					Args  []string `yaml:"args"`
					Ports []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					LivenessProbe   k8sProbe `yaml:"livenessProbe"`
					ReadinessProbe  k8sProbe `yaml:"readinessProbe"`
					SecurityContext struct {
						ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
						AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
					} `yaml:"securityContext"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name   string `yaml:"name"`
					Secret *struct {
						SecretName string `yaml:"secretName"`
					} `yaml:"secret"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// TestKubernetesManifests: deploy/kubernetes/latchkey.yaml parses, is the
// one docs/deploy.md shows, runs three non-root replicas on a read-only
// root with probes on /healthz and /readyz, mounts every secret the
// configuration names, and its ConfigMap's configuration passes
// config.Load and Validate with keys that all exist in config.example.yaml.
func TestKubernetesManifests(t *testing.T) {
	manifest, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "kubernetes", "latchkey.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, manifest) {
		t.Error("docs/deploy.md does not show deploy/kubernetes/latchkey.yaml as it is")
	}
	docs := map[string]k8sDoc{}
	dec := yaml.NewDecoder(bytes.NewReader(manifest))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("manifest: %v", err)
		}
		docs[d.Kind] = d
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		if _, ok := docs[k]; !ok {
			t.Fatalf("manifest has no %s", k)
		}
	}
	dep := docs["Deployment"]
	pod := dep.Spec.Template.Spec
	labels := dep.Spec.Template.Metadata.Labels
	if dep.Spec.Replicas != 3 {
		t.Errorf("replicas %d", dep.Spec.Replicas)
	}
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(dep.Spec.Selector.MatchLabels) || !matches(docs["PodDisruptionBudget"].Spec.Selector.MatchLabels) {
		t.Error("a selector does not match the pod labels")
	}
	if pdb := docs["PodDisruptionBudget"].Spec.MinAvailable; pdb < 1 || pdb >= dep.Spec.Replicas {
		t.Errorf("PodDisruptionBudget minAvailable %d with %d replicas", pdb, dep.Spec.Replicas)
	}
	if !pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.RunAsUser == 0 {
		t.Error("the pod may run as root")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	if !ctr.SecurityContext.ReadOnlyRootFilesystem || ctr.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the container's root filesystem is writable or it may escalate")
	}
	if ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes %q, %q", ctr.LivenessProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path)
	}
	if len(ctr.Ports) != 1 || ctr.LivenessProbe.HTTPGet.Port != ctr.Ports[0].Name || ctr.ReadinessProbe.HTTPGet.Port != ctr.Ports[0].Name ||
		docs["Service"].Spec.Ports[0].TargetPort != ctr.Ports[0].Name {
		t.Error("probes or the Service do not target the container's port")
	}
	mounts := map[string]string{} // mount path -> volume
	for _, m := range ctr.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	secretVolumes, configVolume := map[string]bool{}, ""
	for _, v := range pod.Volumes {
		if v.Secret != nil {
			secretVolumes[v.Name] = true
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == docs["ConfigMap"].Metadata.Name {
			configVolume = v.Name
		}
	}

	// the configuration file the container is given
	cfgText, ok := docs["ConfigMap"].Data["latchkey.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no latchkey.yaml")
	}
	cfgPath := ""
	for i, a := range ctr.Args {
		if a == "--config" && i+1 < len(ctr.Args) {
			cfgPath = ctr.Args[i+1]
		}
	}
	if path.Base(cfgPath) != "latchkey.yaml" || mounts[path.Dir(cfgPath)] != configVolume || configVolume == "" {
		t.Errorf("--config %q is not the ConfigMap's file", cfgPath)
	}
	// every *_file is a file of a mounted Secret; the test gives each one
	// a value
	tmp := t.TempDir()
	text := cfgText
	for _, line := range strings.Split(cfgText, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasSuffix(k, "_file") {
			continue
		}
		p := strings.Trim(strings.TrimSpace(v), `"`)
		if !secretVolumes[mounts[path.Dir(p)]] {
			t.Errorf("%s: %s is not in a mounted Secret", k, p)
		}
		secret := make([]byte, 48)
		rand.Read(secret)
		value := base64.StdEncoding.EncodeToString(secret)
		if k == "dsn_file" {
			value = "postgres://latchkey:pw@db.example.org:5432/latchkey?sslmode=verify-full"
		}
		f := filepath.Join(tmp, path.Base(p))
		if err := os.WriteFile(f, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		text = strings.ReplaceAll(text, p, f)
	}
	testCfg := filepath.Join(tmp, "latchkey.yaml")
	if err := os.WriteFile(testCfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(testCfg, config.WithLookupEnv(func(string) (string, bool) { return "", false }))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("the ConfigMap's configuration does not pass latchkey's checks: %v", err)
	}
	for _, w := range cfg.Warnings {
		t.Errorf("the ConfigMap's configuration: warning: %s", w)
	}
	// SIGTERM: shutdown_delay, then requests in flight finish, then the
	// outbox drains; the pod must be given all of it
	stop := cfg.Server.ShutdownDelay + connCloseWait + httpShutdownTimeout + flow.OutboxDrainTimeout
	if grace := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; grace <= stop {
		t.Errorf("terminationGracePeriodSeconds %v is not more than a stop takes at most (%v)", grace, stop)
	}
	if cfg.Store.Driver != config.StorePostgres {
		t.Errorf("store.driver %q: replicas must share a PostgreSQL store", cfg.Store.Driver)
	}
	if cfg.Store.Migrate != config.MigrateManual {
		t.Errorf("store.migrate %q: only the migrate Job (migrate-job.yaml) may change the schema", cfg.Store.Migrate)
	}
	// the drain outlasts the readiness probe's time to notice it
	rp := ctr.ReadinessProbe
	if !drainCovers(cfg.Server.ShutdownDelay, rp.PeriodSeconds, rp.FailureThreshold) {
		t.Errorf("shutdown_delay %v is shorter than the readiness probe (every %ds, out after %d) takes to notice a drain, plus %v",
			cfg.Server.ShutdownDelay, rp.PeriodSeconds, rp.FailureThreshold, config.DrainMargin)
	}
	if _, port, _ := strings.Cut(cfg.Server.Listen, ":"); port != "8080" || ctr.Ports[0].ContainerPort != 8080 {
		t.Errorf("server.listen %q, containerPort %d", cfg.Server.Listen, ctr.Ports[0].ContainerPort)
	}
	example, err := os.ReadFile(filepath.Join(repoRoot, "config.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	exampleKeys, keys := map[string]bool{}, map[string]bool{}
	yamlKeys(t, example, exampleKeys)
	yamlKeys(t, []byte(cfgText), keys)
	for k := range keys {
		// every secret key X may also be given as X_file (design: public interfaces)
		if !exampleKeys[k] && !(strings.HasSuffix(k, "_file") && exampleKeys[strings.TrimSuffix(k, "_file")]) {
			t.Errorf("the ConfigMap's key %s is not in config.example.yaml", k)
		}
	}
}

// TestKubernetesMigrateJob: deploy/kubernetes/migrate-job.yaml runs
// `latchkey migrate` non-root on a read-only root with the Deployment's
// image, ConfigMap, Secret and mount paths, and the Deployment's instances
// do not migrate (store.migrate manual, the PostgreSQL default): the Job
// is the one step that changes the schema.
func TestKubernetesMigrateJob(t *testing.T) {
	read := func(name string) map[string]k8sDoc {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "kubernetes", name))
		if err != nil {
			t.Fatal(err)
		}
		docs := map[string]k8sDoc{}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var d k8sDoc
			if err := dec.Decode(&d); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			docs[d.Kind] = d
		}
		return docs
	}
	dep := read("latchkey.yaml")["Deployment"].Spec.Template.Spec
	job, ok := read("migrate-job.yaml")["Job"]
	if !ok {
		t.Fatal("migrate-job.yaml has no Job")
	}
	js := job.Spec.Template.Spec
	if len(js.Containers) != 1 || len(dep.Containers) != 1 {
		t.Fatalf("containers: job %d, deployment %d", len(js.Containers), len(dep.Containers))
	}
	jc, dc := js.Containers[0], dep.Containers[0]
	if len(jc.Args) != 3 || jc.Args[0] != "migrate" || jc.Args[1] != "--config" || jc.Args[2] != dc.Args[len(dc.Args)-1] {
		t.Errorf("job args %v, deployment args %v", jc.Args, dc.Args)
	}
	if !js.SecurityContext.RunAsNonRoot || js.SecurityContext.RunAsUser == 0 || !jc.SecurityContext.ReadOnlyRootFilesystem || jc.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the job may run as root or write its root file system")
	}
	mounts := func(c []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	}) map[string]string {
		m := map[string]string{}
		for _, v := range c {
			m[v.Name] = v.MountPath
		}
		return m
	}
	jm, dm := mounts(jc.VolumeMounts), mounts(dc.VolumeMounts)
	for _, v := range []string{"config", "secrets"} {
		if jm[v] == "" || jm[v] != dm[v] {
			t.Errorf("volume %s mounted at %q in the job, %q in the deployment", v, jm[v], dm[v])
		}
	}
	sources := func(s []struct {
		Name   string `yaml:"name"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	}) map[string]string {
		m := map[string]string{}
		for _, v := range s {
			switch {
			case v.Secret != nil:
				m[v.Name] = "secret/" + v.Secret.SecretName
			case v.ConfigMap != nil:
				m[v.Name] = "configmap/" + v.ConfigMap.Name
			}
		}
		return m
	}
	js2, ds := sources(js.Volumes), sources(dep.Volumes)
	for _, v := range []string{"config", "secrets"} {
		if js2[v] == "" || js2[v] != ds[v] {
			t.Errorf("volume %s is %q in the job, %q in the deployment", v, js2[v], ds[v])
		}
	}
	if jc.Image == "" || jc.Image != dc.Image {
		t.Errorf("job image %q, deployment image %q", jc.Image, dc.Image)
	}
	// the instances not migrating: TestKubernetesManifests
}
