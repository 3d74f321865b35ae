#!/usr/bin/python3
"""Static checks of deploy/kubernetes: every manifest parses, the expected kinds
are there, probes hit the right paths and port, pods run non-root with a
read-only root filesystem, references (ConfigMap, PVC, Service, HPA, KServe
runtime) resolve, and the ConfigMap's deconvd.json is accepted by the real
binary (`deconvd --check`). Needs python3-yaml. No cluster is contacted.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("skip - python3 has no 'yaml' module (Debian: python3-yaml)")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
BIN = os.path.abspath(os.environ.get("DECONVD_BIN", os.path.join(ROOT, "build", "deconvd")))
PORT = 8080
LIVE, READY = "/v2/health/live", "/v2/health/ready"

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {what}")
    else:
        failed += 1
        print(f"FAIL - {what}")
    return cond


def load_all():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "**", "*.y*ml"), recursive=True)):
        rel = os.path.relpath(path, ROOT)
        try:
            with open(path) as f:
                found = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            check(False, f"{rel}: YAML parses ({e})")
            continue
        check(found and all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind")
                            and (d.get("metadata") or {}).get("name") or d.get("kind") ==
                            "Kustomization" for d in found),
              f"{rel}: parses; apiVersion, kind, metadata.name")
        docs += [(rel, d) for d in found]
    return docs


def port_number(container, port):
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_probes(where, c):
    for probe, path in (("livenessProbe", LIVE), ("readinessProbe", READY)):
        get = (c.get(probe) or {}).get("httpGet") or {}
        check(get.get("path") == path and port_number(c, get.get("port")) == PORT,
              f"{where}: {probe} GET {path} on port {PORT} (got {get.get('path')} "
              f"{get.get('port')})")


def check_container_security(where, c, pod_sc):
    sc = c.get("securityContext") or {}
    nonroot = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    check(nonroot is True and uid not in (None, 0),
          f"{where}: runAsNonRoot with a non-zero runAsUser ({uid})")
    check(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"),
          f"{where}: no privilege escalation")
    check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
          f"{where}: capabilities drop ALL")
    res = c.get("resources") or {}
    check(all(k in (res.get(kind) or {}) for kind in ("requests", "limits")
              for k in ("cpu", "memory")),
          f"{where}: cpu and memory requests and limits")


def deconvd_check(conf_text, where):
    """The real binary accepts the config (unknown keys are errors)."""
    if not os.access(BIN, os.X_OK):
        print(f"skip - {where}: {BIN} not built, config not run through deconvd --check")
        return
    with tempfile.TemporaryDirectory(prefix="deconvd-k8s.") as tmp:
        path = os.path.join(tmp, "deconvd.json")
        with open(path, "w") as f:
            f.write(conf_text)
        r = subprocess.run([BIN, "--check", "--config", path, "--models",
                            os.path.join(ROOT, "config", "models")],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"{where}: deconvd --check accepts it "
              f"({(r.stdout.strip().splitlines() or [''])[-1] or r.stderr.strip()})")


def main():
    docs = load_all()
    by_kind = {}
    for rel, d in docs:
        by_kind.setdefault(d["kind"], []).append((rel, d))
    want = {"Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap",
            "PersistentVolumeClaim", "ServingRuntime", "InferenceService"}
    check(want <= set(by_kind), f"kinds present: {sorted(want)} (missing "
          f"{sorted(want - set(by_kind))})")
    api = {"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1",
           "PersistentVolumeClaim": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
           "PodDisruptionBudget": "policy/v1", "ServingRuntime": "serving.kserve.io/v1alpha1",
           "InferenceService": "serving.kserve.io/v1beta1"}
    for kind, version in api.items():
        for rel, d in by_kind.get(kind, []):
            check(d["apiVersion"] == version, f"{rel}: {kind} is {version}")

    def named(kind, name):
        return next((d for _, d in by_kind.get(kind, []) if d["metadata"]["name"] == name), None)

    # --- Deployment ---------------------------------------------------------
    for rel, dep in by_kind.get("Deployment", []):
        where = f"{rel} {dep['metadata']['name']}"
        spec = dep["spec"]
        tmpl = spec["template"]
        pod = tmpl["spec"]
        labels = tmpl["metadata"].get("labels") or {}
        sel = spec["selector"]["matchLabels"]
        check(sel and all(labels.get(k) == v for k, v in sel.items()),
              f"{where}: selector matches the pod labels")
        pod_sc = pod.get("securityContext") or {}
        check(pod_sc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
        check((pod_sc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
              f"{where}: seccompProfile RuntimeDefault")
        check(pod.get("automountServiceAccountToken") is False,
              f"{where}: no service-account token")
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            cw = f"{where} container {c['name']}"
            check(any(p.get("containerPort") == PORT for p in c.get("ports", [])),
                  f"{cw}: containerPort {PORT}")
            check_probes(cw, c)
            check_container_security(cw, c, pod_sc)
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            check(all(m["name"] in vols for m in mounts.values()),
                  f"{cw}: every volumeMount names a volume")
            check(all(m.get("readOnly") for m in mounts.values()),
                  f"{cw}: config and models mounted read-only")
            args = c.get("args") or []
            conf_path = args[args.index("--config") + 1] if "--config" in args else None
            conf_dir = os.path.dirname(conf_path or "")
            cm_mount = mounts.get(conf_dir)
            cm_name = ((vols.get(cm_mount["name"]) or {}).get("configMap") or {}).get("name") \
                if cm_mount else None
            cm = named("ConfigMap", cm_name) if cm_name else None
            check(cm is not None, f"{cw}: --config {conf_path} is in a ConfigMap volume "
                  f"({cm_name})")
            if cm is None:
                continue
            fname = os.path.basename(conf_path)
            text = (cm.get("data") or {}).get(fname)
            check(text is not None, f"ConfigMap {cm_name}: has {fname}")
            try:
                conf = json.loads(text or "")
            except ValueError as e:
                check(False, f"ConfigMap {cm_name}/{fname}: valid JSON ({e})")
                continue
            check(conf.get("listen") == f"0.0.0.0:{PORT}",
                  f"ConfigMap {cm_name}: listen 0.0.0.0:{PORT} (got {conf.get('listen')})")
            models = conf.get("models_dir")
            m = mounts.get(models)
            pvc = ((vols.get(m["name"]) or {}).get("persistentVolumeClaim") or {}) if m else {}
            check(m is not None, f"{cw}: models_dir {models} is a mounted volume")
            if pvc:
                check(named("PersistentVolumeClaim", pvc.get("claimName")) is not None,
                      f"{cw}: PVC {pvc.get('claimName')} is defined")
            drain_s = conf.get("drain_timeout_ms", 10000) / 1000
            grace = pod.get("terminationGracePeriodSeconds", 30)
            check(grace > drain_s, f"{where}: terminationGracePeriodSeconds {grace} > "
                  f"drain_timeout {drain_s:g} s")
            limit = str(((c.get("resources") or {}).get("limits") or {}).get("cpu", ""))
            if limit.isdigit() and conf.get("workers") and conf.get("threads_per_request"):
                check(conf["workers"] * conf["threads_per_request"] == int(limit),
                      f"ConfigMap {cm_name}: workers x threads_per_request = cpu limit {limit}")
            deconvd_check(text, f"ConfigMap {cm_name}/{fname}")

        # Service and HPA for this Deployment.
        svcs = [d for _, d in by_kind.get("Service", [])
                if d["spec"].get("selector") and
                all(labels.get(k) == v for k, v in d["spec"]["selector"].items())]
        check(svcs, f"{where}: a Service selects its pods")
        c0 = pod["containers"][0]
        for s in svcs:
            check(all(port_number(c0, p.get("targetPort", p.get("port"))) == PORT
                      for p in s["spec"]["ports"]),
                  f"Service {s['metadata']['name']}: targetPort reaches {PORT}")
        hpas = [d for _, d in by_kind.get("HorizontalPodAutoscaler", [])
                if d["spec"]["scaleTargetRef"].get("kind") == "Deployment"
                and d["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]]
        check(hpas, f"{where}: an HPA targets it")
        for h in hpas:
            hs = h["spec"]
            check(1 <= hs.get("minReplicas", 1) <= hs["maxReplicas"],
                  f"HPA {h['metadata']['name']}: 1 <= minReplicas <= maxReplicas")
            cpu = [m for m in hs.get("metrics", []) if m.get("type") == "Resource"
                   and m["resource"]["name"] == "cpu"]
            check(not cpu or all("cpu" in ((c.get("resources") or {}).get("requests") or {})
                                 for c in pod["containers"]),
                  f"HPA {h['metadata']['name']}: CPU target with CPU requests set")

    # --- KServe -------------------------------------------------------------
    for rel, sr in by_kind.get("ServingRuntime", []):
        where = f"{rel} {sr['metadata']['name']}"
        spec = sr["spec"]
        check("v2" in spec.get("protocolVersions", []), f"{where}: protocolVersions has v2")
        check(spec.get("supportedModelFormats"), f"{where}: supportedModelFormats")
        c = next((c for c in spec.get("containers", []) if c["name"] == "kserve-container"),
                 None)
        if not check(c is not None, f"{where}: a kserve-container"):
            continue
        check(any(p.get("containerPort") == PORT for p in c.get("ports", [])),
              f"{where}: containerPort {PORT}")
        args = c.get("args") or []
        check("--models" in args and args[args.index("--models") + 1] == "/mnt/models",
              f"{where}: --models /mnt/models (KServe's storage initializer)")
        check_probes(where, c)
        check_container_security(where, c, {})
    for rel, isvc in by_kind.get("InferenceService", []):
        where = f"{rel} {isvc['metadata']['name']}"
        model = isvc["spec"]["predictor"].get("model") or {}
        sr = named("ServingRuntime", model.get("runtime"))
        check(sr is not None, f"{where}: runtime {model.get('runtime')} is defined")
        if sr:
            fmts = {f["name"] for f in sr["spec"].get("supportedModelFormats", [])}
            check((model.get("modelFormat") or {}).get("name") in fmts,
                  f"{where}: modelFormat is supported by the runtime")
        check(model.get("protocolVersion") == "v2", f"{where}: protocolVersion v2")
        check(bool(model.get("storageUri")), f"{where}: storageUri")

    # --- kustomization --------------------------------------------------------
    for rel, k in by_kind.get("Kustomization", []):
        base = os.path.dirname(os.path.join(ROOT, rel))
        res = k.get("resources", [])
        check(res and all(os.path.exists(os.path.join(base, r)) for r in res),
              f"{rel}: every resource exists")

    print(f"k8s: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
