"""deploy/kubernetes/ against the Kubernetes API's schemas, with no cluster:
every document of every manifest is validated by kubernetes-models (npm),
the Kubernetes 1.27 OpenAPI schemas compiled to validators, with unknown
fields refused too (tests/integration/kubernetes/validate.mjs). The npm
packages are installed from the committed lock file into the build tree
(BUILD/npm-kubernetes) on first use. Then the fleet's shape (the
autoscaler, the disruption budget and the Service keep their promises to
the Deployment), and the reloader container's script run for real against
Embargo: a changed configuration is put in force, a rejected one is not."""

import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness

try:
    import yaml
except ImportError:  # Debian package python3-yaml (scripts/deps.sh test)
    yaml = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBE_DIR = os.path.join(ROOT, "deploy", "kubernetes")
VALIDATOR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kubernetes")
VALIDATOR_FILES = ("package.json", "package-lock.json", "validate.mjs")


def manifests():
    return sorted(glob.glob(os.path.join(KUBE_DIR, "*.yaml")))


def install_validator():
    """BUILD/npm-kubernetes with the validator and its locked npm packages
    (npm ci, once per lock file); returns its path."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise unittest.SkipTest("nodejs with npm not installed (scripts/deps.sh test)")
    work = os.path.join(os.path.dirname(os.path.abspath(harness.BINARY)), "npm-kubernetes")
    os.makedirs(work, exist_ok=True)
    for name in VALIDATOR_FILES:
        shutil.copyfile(os.path.join(VALIDATOR_DIR, name), os.path.join(work, name))
    with open(os.path.join(work, "package-lock.json"), "rb") as f:
        lock = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(work, "node_modules", ".embargo-lock-sha256")
    try:
        with open(stamp) as f:
            if f.read().strip() == lock:
                return work
    except OSError:
        pass
    p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--cache", os.path.join(work, ".npm")],
                       cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    if p.returncode != 0:
        raise AssertionError("npm ci in %s failed:\n%s" % (work, p.stdout.decode()[-4000:]))
    with open(stamp, "w") as f:
        f.write(lock + "\n")
    return work


def validate(work, files):
    """(exit status, output) of the validator on FILES."""
    p = subprocess.run(["node", os.path.join(work, "validate.mjs")] + list(files), cwd=work,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class SchemaTest(unittest.TestCase):
    """Every manifest, and proof that the validator refuses what is wrong."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.work = install_validator()
        cls.tmp = tempfile.mkdtemp(prefix="embargo-k8s-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_manifest_is_valid_against_the_kubernetes_schemas(self):
        files = manifests()
        self.assertIn(os.path.join(KUBE_DIR, "egress.yaml"), files)
        self.assertIn(os.path.join(KUBE_DIR, "sidecar.yaml"), files)
        rc, out = validate(self.work, files)
        self.assertEqual(rc, 0, out)
        ok = [l for l in out.splitlines() if l.endswith(": ok")]
        if yaml is not None:  # one "ok" per document
            ndocs = 0
            for path in files:
                with open(path) as f:
                    ndocs += sum(1 for d in yaml.safe_load_all(f) if d is not None)
            self.assertEqual(len(ok), ndocs, out)
        for what in ("Deployment embargo", "HorizontalPodAutoscaler embargo",
                     "PodDisruptionBudget embargo", "Service embargo"):
            self.assertTrue(any(l.endswith(": %s: ok" % what) for l in ok), what + "\n" + out)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_the_validator_refuses_what_the_api_server_would(self):
        path = self.write("broken.yaml", """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replica: 3
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - {name: c, image: x, ports: [{containerPort: "3128"}]}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec:
  externalTraficPolicy: Local
  ports: [{port: 3128, targetPort: proxy}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: h}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: broken}
---
apiVersion: policy/v1beta3
kind: PodDisruptionBudget
metadata: {name: p}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
data: {embargo.yaml: 1}
""")
        rc, out = validate(self.work, [path])
        self.assertEqual(rc, 1, out)
        for line in (
                "1: Deployment broken: /spec/replica: unknown field",
                "1: Deployment broken: "
                "/spec/template/spec/containers/0/ports/0/containerPort: must be integer",
                "12: Service s: /spec/externalTraficPolicy: unknown field",
                "19: HorizontalPodAutoscaler h: /spec: must have required property maxReplicas",
                "25: PodDisruptionBudget p: /: no built-in type PodDisruptionBudget in "
                "policy/v1beta3",
                "29: ConfigMap c: /data/embargo.yaml: must be string"):
            self.assertIn(path + ":" + line, out.splitlines(), out)

    def test_the_validator_refuses_a_duplicate_key(self):
        rc, out = validate(self.work, [self.write("dup.yaml", "kind: Service\nkind: Pod\n")])
        self.assertEqual(rc, 2, out)
        self.assertIn(os.path.join(self.tmp, "dup.yaml") + ":1: Map keys must be unique", out)


class FleetShapeTest(unittest.TestCase):
    """What the egress fleet's objects promise each other."""

    @classmethod
    def setUpClass(cls):
        if yaml is None:
            raise unittest.SkipTest("python3-yaml not installed")
        with open(os.path.join(KUBE_DIR, "egress.yaml")) as f:
            cls.docs = [d for d in yaml.safe_load_all(f) if d is not None]

    def one(self, kind):
        found = [d for d in self.docs if d["kind"] == kind]
        self.assertEqual(len(found), 1, kind)
        return found[0]

    def test_the_autoscaler_scales_the_deployment_on_cpu(self):
        dep, hpa = self.one("Deployment"), self.one("HorizontalPodAutoscaler")
        self.assertEqual(hpa["apiVersion"], "autoscaling/v2")
        self.assertEqual(hpa["spec"]["scaleTargetRef"],
                         {"apiVersion": "apps/v1", "kind": "Deployment",
                          "name": dep["metadata"]["name"]})
        self.assertEqual([m["resource"]["name"] for m in hpa["spec"]["metrics"]], ["cpu"])
        self.assertLessEqual(hpa["spec"]["minReplicas"], dep["spec"]["replicas"])
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 2)
        self.assertGreater(hpa["spec"]["maxReplicas"], hpa["spec"]["minReplicas"])
        for c in dep["spec"]["template"]["spec"]["containers"]:  # utilization needs requests
            self.assertIn("cpu", c["resources"]["requests"], c["name"])

    def test_the_disruption_budget_covers_the_deployments_pods(self):
        dep, pdb = self.one("Deployment"), self.one("PodDisruptionBudget")
        self.assertEqual(pdb["apiVersion"], "policy/v1")
        self.assertEqual(pdb["spec"]["selector"], dep["spec"]["selector"])
        self.assertEqual(pdb["spec"].get("maxUnavailable"), 1)
        self.assertEqual(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

    def test_the_service_keeps_client_addresses(self):
        svc = self.one("Service")
        self.assertEqual(svc["spec"]["type"], "LoadBalancer")
        self.assertEqual(svc["spec"]["externalTrafficPolicy"], "Local")

    def test_the_reloader_sees_the_configmap_change(self):
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        names = [c["name"] for c in pod["containers"]]
        self.assertEqual(names, ["embargo", "reloader"])
        for c in pod["containers"]:
            mounts = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/embargo"]
            self.assertEqual(len(mounts), 1, c["name"])
            self.assertNotIn("subPath", mounts[0], "a subPath mount never sees a change")


def reloader_script(docs):
    pod = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]
    c = [c for c in pod["containers"] if c["name"] == "reloader"][0]
    assert c["command"][:2] == ["/bin/sh", "-c"], c["command"]
    return c["command"][2]


def policy_version(port, token):
    """The policy version in force (GET /policy on the admin endpoint)."""
    req = ("GET /policy HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n\r\n" % (port, token)).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(req)
        data, _ = harness.read_to_eof(s, timeout=10)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    return json.loads(body)["version"]


class ReloaderTest(unittest.TestCase):
    """The reloader container's own script, with /etc/embargo and the admin
    address pointed at a scratch directory and a real Embargo on loopback,
    and its 10 s poll shortened."""

    TOKEN = "reloader-test-token-0123456789"

    def setUp(self):
        if yaml is None:
            self.skipTest("python3-yaml not installed")
        self.dir = tempfile.mkdtemp(prefix="embargo-reloader-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        os.chmod(self.dir, 0o755)  # started as root, Embargo reads it as `user`
        self.admin = harness.free_port()
        with open(os.path.join(self.dir, "admin-token"), "w") as f:
            f.write(self.TOKEN + "\n")
        self.write_config("")
        self.proc = subprocess.Popen(
            [harness.BINARY, "run", "--config", os.path.join(self.dir, "embargo.yaml"),
             "--listen", "127.0.0.1:%d" % harness.free_port(), "--log", "/dev/null"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addCleanup(self.stop, self.proc)
        harness.wait_until(lambda: self.proc.poll() is not None or self.version_or_none(), 20,
                           what="Embargo's admin endpoint")
        self.assertIsNone(self.proc.poll(), "embargo exited")
        with open(os.path.join(KUBE_DIR, "egress.yaml")) as f:
            script = reloader_script([d for d in yaml.safe_load_all(f) if d is not None])
        script = (script.replace("/etc/embargo", self.dir)
                  .replace("127.0.0.1:9090", "127.0.0.1:%d" % self.admin)
                  .replace("sleep 10", "sleep 0.2"))
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(harness.BINARY)) + ":" +
                   os.environ.get("PATH", "/usr/bin:/bin"))
        # Beside the watched directory, not in it: the reloader hashes every file there.
        self.out = tempfile.NamedTemporaryFile("w+", prefix="embargo-reloader-", suffix=".out")
        self.addCleanup(self.out.close)
        self.reloader = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL,
                                         stdout=self.out, stderr=subprocess.STDOUT, env=env)
        self.addCleanup(self.stop, self.reloader)

    @staticmethod
    def stop(proc):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def write_config(self, extra):
        text = ("admin:\n  listen: 127.0.0.1:%d\n  token_file: admin-token\n" % self.admin) + extra
        with open(os.path.join(self.dir, "embargo.yaml"), "w") as f:
            f.write(text)

    def version_or_none(self):
        try:
            return policy_version(self.admin, self.TOKEN)
        except (OSError, AssertionError, ValueError):
            return None

    def reloader_output(self):
        self.out.flush()
        with open(self.out.name) as f:
            return f.read()

    def test_a_changed_configuration_is_put_in_force_and_a_rejected_one_is_not(self):
        first = policy_version(self.admin, self.TOKEN)
        self.write_config("exceptions:\n  - {host: a.example, reason: test}\n")
        # The policy swaps before `embargo reload` returns and the reloader says so.
        try:
            harness.wait_until(lambda: policy_version(self.admin, self.TOKEN) != first and
                               "embargo-reloader: reloaded:" in self.reloader_output(), 30,
                               what="the reloader to put the change in force")
        except AssertionError as e:
            raise AssertionError("%s; the reloader said:\n%s" % (e, self.reloader_output()))
        second = policy_version(self.admin, self.TOKEN)
        self.write_config("exceptions:\n  - {host: a.example, clients: [nobody]}\n")
        harness.wait_until(lambda: "reload failed" in self.reloader_output(), 30,
                           what="the reloader to report the rejection")
        out = self.reloader_output()
        self.assertIn('"rejected"', out)
        self.assertIn("unknown client group 'nobody'", out)
        self.assertEqual(policy_version(self.admin, self.TOKEN), second,
                         "a rejected configuration leaves the old one in force")
        self.assertIsNone(self.reloader.poll(), "the reloader goes on")


if __name__ == "__main__":
    harness.main()
