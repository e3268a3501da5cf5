"""The Kubernetes examples in deploy/kubernetes/ and the container image's
own files: every manifest parses, and the fields that matter are right and
agree with the Dockerfile — images and their tags, the non-root uid,
capabilities, read-only roots, the sidecar's init container command
(`embargo rules --format iptables --mode intercept --sidecar`, its output
loaded with iptables-restore), ConfigMap mounts, ports, probe paths — and
every shipped configuration passes `embargo config check` (skipped, with the
reason, for a configuration using keys this build does not know yet)."""

import os
import re
import shlex
import subprocess
import tempfile
import unittest

import harness

try:
    import yaml
except ImportError:  # Debian package python3-yaml (scripts/deps.sh test)
    yaml = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE_DIR = os.path.join(ROOT, "deploy", "kubernetes")
CONTAINER_DIR = os.path.join(ROOT, "deploy", "container")
UID = 10001
CONFIG_MOUNT = "/etc/embargo"
RULES_COMMAND = ["embargo", "rules", "--format", "iptables", "--mode", "intercept", "--sidecar"]


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        return re.search(r"project\(embargo VERSION ([0-9.]+)", f.read()).group(1)


def dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        return f.read()


def final_stage(text):
    """The Dockerfile's last stage (the default target) as text."""
    return re.split(r"(?m)^FROM ", text)[-1]


def config_check(files):
    """(exit code, output) of `embargo config check` on FILES["embargo.yaml"],
    with every file of FILES (name: text) beside it in a scratch directory,
    as a mounted ConfigMap and Secret would put them."""
    with tempfile.TemporaryDirectory(prefix="embargo-deploy-") as d:
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        p = subprocess.run([harness.BINARY, "config", "check", os.path.join(d, "embargo.yaml")],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        return p.returncode, p.stdout.decode("utf-8", "replace")


def healthcheck_command():
    """The Dockerfile's HEALTHCHECK command (its JSON list), as text."""
    return re.search(r'(?m)^\s*CMD (\[.*\])\s*$', dockerfile().split("\nHEALTHCHECK ", 1)[1]).group(1)


def pod_specs(docs):
    """(name, pod spec) of every workload in DOCS."""
    for d in docs:
        if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d.get("kind") == "Pod":
            yield d["metadata"]["name"], d["spec"]


def image_repo(image):
    """The repository's last path element and the tag of IMAGE."""
    name, _, tag = image.rsplit("/", 1)[-1].partition(":")
    return name, tag


def effective(pod, container, key):
    """A securityContext field of CONTAINER, falling back to the pod's."""
    c = container.get("securityContext") or {}
    if key in c:
        return c[key]
    return (pod.get("securityContext") or {}).get(key)


class DeployTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if yaml is None:
            raise unittest.SkipTest("python3-yaml not installed")
        cls.files = {}
        for name in sorted(os.listdir(KUBE_DIR)):
            if name.endswith((".yaml", ".yml")):
                with open(os.path.join(KUBE_DIR, name)) as f:
                    cls.files[name] = [d for d in yaml.safe_load_all(f) if d is not None]
        cls.version = project_version()

    def kind(self, file, kind, name=None):
        found = [d for d in self.files[file] if d["kind"] == kind and
                 (name is None or d["metadata"]["name"] == name)]
        self.assertEqual(len(found), 1, "%s: one %s %s" % (file, kind, name or ""))
        return found[0]

    def embargo_containers(self, file):
        """(pod spec, container, is_init) for every container of FILE running an Embargo image."""
        out = []
        for _, pod in pod_specs(self.files[file]):
            for is_init, key in ((True, "initContainers"), (False, "containers")):
                for c in pod.get(key) or []:
                    if image_repo(c["image"])[0] in ("embargo", "embargo-init"):
                        out.append((pod, c, is_init))
        return out

    def config_files(self, file, pod, container):
        """The files (name: text) CONTAINER sees in /etc/embargo: the
        ConfigMap's embargo.yaml, and for a projected volume the Secret's
        files beside it."""
        mounts = [m for m in container.get("volumeMounts") or [] if m["mountPath"] == CONFIG_MOUNT]
        self.assertEqual(len(mounts), 1, "%s: %s mounts %s" % (file, container["name"], CONFIG_MOUNT))
        self.assertTrue(mounts[0].get("readOnly"), container["name"])
        vols = [v for v in pod.get("volumes") or [] if v["name"] == mounts[0]["name"]]
        self.assertEqual(len(vols), 1)
        sources = vols[0]["projected"]["sources"] if "projected" in vols[0] else [vols[0]]
        files = {}
        for src in sources:
            kind, ref = ("ConfigMap", src["configMap"]) if "configMap" in src else \
                ("Secret", src["secret"])
            obj = self.kind(file, kind, ref["name"])
            data = obj.get("data") if kind == "ConfigMap" else obj.get("stringData")
            for item in ref["items"]:
                files[item["path"]] = data[item["key"]]
        self.assertIn("embargo.yaml", files)
        return files

    def config_of(self, file, pod, container):
        """The parsed embargo.yaml CONTAINER reads from /etc/embargo."""
        return yaml.safe_load(self.config_files(file, pod, container)["embargo.yaml"])

    def check_config_files(self, where, files):
        """Runs `embargo config check` on FILES["embargo.yaml"] (with the
        other FILES beside it): a key this build refuses is a failure."""
        rc, out = config_check(files)
        self.assertEqual(rc, 0, "%s:\n%s" % (where, out))

    # ---- every manifest --------------------------------------------------------

    def test_every_manifest_parses_with_kind_and_name(self):
        self.assertIn("sidecar.yaml", self.files)
        self.assertIn("egress.yaml", self.files)
        for name, docs in self.files.items():
            self.assertTrue(docs, name)
            for d in docs:
                self.assertIn("apiVersion", d, name)
                self.assertIn("kind", d, name)
                self.assertTrue(d["metadata"]["name"], name)

    def test_embargo_images_carry_the_project_version(self):
        for file in self.files:
            for _, c, _ in self.embargo_containers(file):
                repo, tag = image_repo(c["image"])
                self.assertEqual(tag, self.version, "%s: %s" % (file, c["image"]))
                self.assertEqual(c.get("imagePullPolicy"), "IfNotPresent", c["name"])

    def test_embargo_runs_as_the_images_uid_without_capabilities_on_a_read_only_root(self):
        self.assertIn("USER %d:%d" % (UID, UID), final_stage(dockerfile()))
        for file in self.files:
            proxies = [(p, c) for p, c, init in self.embargo_containers(file) if not init]
            self.assertTrue(proxies, file)
            for pod, c in proxies:
                self.assertEqual(effective(pod, c, "runAsUser"), UID, c["name"])
                self.assertEqual(effective(pod, c, "runAsGroup"), UID, c["name"])
                self.assertIs(effective(pod, c, "runAsNonRoot"), True, c["name"])
                sc = c.get("securityContext") or {}
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, c["name"])
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, c["name"])
                self.assertEqual(sc.get("capabilities"), {"drop": ["ALL"]}, c["name"])
                self.assertTrue(c["resources"]["requests"] and c["resources"]["limits"])

    # ---- the sidecar -------------------------------------------------------------

    def sidecar(self):
        pods = list(pod_specs(self.files["sidecar.yaml"]))
        self.assertEqual(len(pods), 1)
        return pods[0][1]

    def test_sidecar_init_container_loads_embargo_rules_with_iptables_restore(self):
        pod = self.sidecar()
        inits = pod.get("initContainers") or []
        self.assertEqual(len(inits), 1, inits)
        init = inits[0]
        self.assertEqual(image_repo(init["image"])[0], "embargo-init")
        self.assertEqual(init["command"], ["/bin/sh", "-c"])
        self.assertEqual(len(init["args"]), 1)
        lines = [l.strip() for l in init["args"][0].splitlines() if l.strip()]
        self.assertEqual(lines[0], "set -e")
        # Every `embargo rules` line: exactly the command, then only --uid
        # (the image's uid), --ipv6, --config (the ConfigMap) and a
        # redirection into a file the next line loads with the restore tool
        # of that family.
        families = set()
        for i, line in enumerate(lines):
            words = shlex.split(line)
            if words[:1] != ["embargo"]:
                continue
            self.assertEqual(words[:len(RULES_COMMAND)], RULES_COMMAND, line)
            rest = words[len(RULES_COMMAND):]
            ipv6 = "--ipv6" in rest
            if ipv6:
                rest.remove("--ipv6")
            self.assertEqual(rest[:4], ["--uid", str(UID), "--config",
                                        CONFIG_MOUNT + "/embargo.yaml"], line)
            self.assertEqual(rest[4], ">", line)
            self.assertEqual(len(rest), 6, line)
            tool = "ip6tables-restore" if ipv6 else "iptables-restore"
            self.assertEqual(shlex.split(lines[i + 1]), [tool, "--noflush", "<", rest[5]])
            families.add(6 if ipv6 else 4)
        self.assertEqual(families, {4, 6}, lines)
        # The init image is the Dockerfile's `init` target: the binary and iptables.
        text = dockerfile()
        self.assertRegex(text, r"(?m)^FROM debian:bookworm-slim AS init$")
        self.assertEqual(self.config_files("sidecar.yaml", pod, init),
                         self.config_files("sidecar.yaml", pod, pod["containers"][0]))

    def test_sidecar_init_container_has_net_admin_and_net_raw_as_root(self):
        init = self.sidecar()["initContainers"][0]
        sc = init["securityContext"]
        self.assertEqual(sorted(sc["capabilities"]["add"]), ["NET_ADMIN", "NET_RAW"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertEqual(sc["runAsUser"], 0)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertNotIn("privileged", sc)

    def test_sidecar_listens_for_intercepted_and_explicit_clients(self):
        pod = self.sidecar()
        proxy = [c for p, c, init in self.embargo_containers("sidecar.yaml") if not init]
        self.assertEqual(len(proxy), 1)
        config = self.config_of("sidecar.yaml", pod, proxy[0])
        listen = config["listen"]
        self.assertIn({"address": "0.0.0.0:3129", "mode": "intercept"}, listen)
        self.assertIn({"address": "[::]:3129", "mode": "intercept"}, listen)
        explicit = [l for l in listen if isinstance(l, str)]
        self.assertTrue(explicit, listen)
        ports = {p["containerPort"] for p in proxy[0]["ports"]}
        self.assertEqual(ports, {3129} | {int(l.rsplit(":", 1)[1]) for l in explicit})
        # Probes run `embargo status` on the loopback admin endpoint: the
        # liveness probe is the image's HEALTHCHECK command, `status --live`
        # (/healthz), and readiness is `status` (/readyz). A stale list or a
        # resolver hiccup must never restart the sidecar its pod's traffic
        # is redirected to.
        self.assertTrue(config["admin"]["listen"].startswith("127.0.0.1:"))
        hc = yaml.safe_load(healthcheck_command())
        self.assertEqual(proxy[0]["livenessProbe"]["exec"]["command"], hc)
        self.assertEqual(hc[-2:], ["status", "--live"], hc)
        self.assertEqual(proxy[0]["readinessProbe"]["exec"]["command"], hc[:-1])

    def test_sidecar_config_passes_config_check(self):
        pod = self.sidecar()
        proxy = [c for p, c, init in self.embargo_containers("sidecar.yaml") if not init][0]
        self.check_config_files("sidecar.yaml ConfigMap",
                                self.config_files("sidecar.yaml", pod, proxy))

    # ---- the egress Deployment -----------------------------------------------------

    def egress(self):
        dep = self.kind("egress.yaml", "Deployment")
        return dep, dep["spec"]["template"]["spec"]

    def test_egress_probes_use_the_admin_endpoint(self):
        _, pod = self.egress()
        c = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        for probe in ("readinessProbe", "livenessProbe"):
            port = c[probe]["httpGet"]["port"]
            self.assertEqual(ports.get(port, port), ports["admin"], probe)
        config = self.config_of("egress.yaml", pod, c)
        host, _, port = config["admin"]["listen"].rpartition(":")
        self.assertEqual(int(port), ports["admin"])
        self.assertNotEqual(host, "127.0.0.1", "the kubelet probes the pod address")
        self.assertEqual([int(l.rsplit(":", 1)[1]) for l in config["listen"]], [ports["proxy"]])

    def test_image_healthcheck_is_liveness(self):
        """The image's HEALTHCHECK asks liveness (/healthz through `status
        --live`), never readiness: a date or a resolver hiccup must not mark
        a working egress unhealthy."""
        self.assertEqual(yaml.safe_load(healthcheck_command()),
                         ["/usr/local/bin/embargo-entrypoint", "status", "--live"])

    def test_egress_service_selects_the_deployment_and_publishes_only_the_proxy(self):
        dep, pod = self.egress()
        svc = self.kind("egress.yaml", "Service")
        labels = dep["spec"]["template"]["metadata"]["labels"]
        self.assertEqual(dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"])
        for k, v in svc["spec"]["selector"].items():
            self.assertEqual(labels.get(k), v)
        self.assertEqual([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]],
                         [(3128, "proxy")])
        self.assertGreaterEqual(dep["spec"]["replicas"], 2)

    def test_egress_config_passes_config_check(self):
        _, pod = self.egress()
        self.check_config_files("egress.yaml ConfigMap and Secret",
                                self.config_files("egress.yaml", pod, pod["containers"][0]))

    def test_egress_probes_carry_the_admin_token(self):
        _, pod = self.egress()
        c = pod["containers"][0]
        files = self.config_files("egress.yaml", pod, c)
        config = yaml.safe_load(files["embargo.yaml"])
        token = files[config["admin"]["token_file"]]
        self.assertGreaterEqual(len(token), 16)
        for probe in ("readinessProbe", "livenessProbe"):
            headers = c[probe]["httpGet"].get("httpHeaders") or []
            self.assertIn({"name": "Authorization", "value": "Bearer " + token}, headers, probe)

    # ---- the image's own configuration ------------------------------------------------

    def test_image_config_passes_config_check(self):
        with open(os.path.join(CONTAINER_DIR, "embargo.yaml")) as f:
            base = f.read()
        rc, out = config_check({"embargo.yaml": base})
        self.assertEqual(rc, 0, out)
        with open(os.path.join(CONTAINER_DIR, "admin.yaml")) as f:
            self.check_config_files("the image config with admin.yaml",
                                    {"embargo.yaml": base + f.read()})


if __name__ == "__main__":
    harness.main()
