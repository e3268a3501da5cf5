"""The manuals cannot drift from the program.

- embargo.yaml(5) documents exactly the keys the configuration loader
  accepts (`embargo config keys`, read from its directive tables), for the
  configuration file and for vendor list files; README's table of keys
  holds the same keys; every directive table of config/ is registered, so
  `config keys` misses none.
- embargo(8) names every command and option `embargo --help` lists.
- `man -l` renders both pages, built from doc/*.scd by scdoc, without a
  warning.
- The host configuration the Debian package installs is the built-in one
  but for its listener, admin endpoint, user and log, and is valid.
- The bash completion completes commands and --format values.

The man page tests need the pages the build makes with scdoc (skipped, with
the reason, when scdoc was not found); the completion test needs
bash-completion.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
YAML_SCD = os.path.join(ROOT, "doc", "embargo.yaml.5.scd")
MAIN_SCD = os.path.join(ROOT, "doc", "embargo.8.scd")


def run(*args, **kw):
    return subprocess.run(list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60, **kw)


def parser_keys(which="config"):
    p = run(harness.BINARY, "config", "keys", which)
    if p.returncode != 0:
        raise AssertionError("embargo config keys %s: exit %d\n%s" % (which, p.returncode,
                                                                     p.stderr))
    return p.stdout.split()


def manual_keys():
    """(configuration keys, vendor list keys) of embargo.yaml(5): the
    entries written `*key*` at the start of a line, before and after the
    VENDOR LISTS section."""
    config, vendor = [], []
    current = config
    with open(YAML_SCD) as f:
        for line in f:
            if line.startswith("# VENDOR LISTS"):
                current = vendor
            m = re.match(r"^\*([A-Za-z0-9_.\[\]]+)\*( \(|$)", line.rstrip("\n"))
            if m:
                current.append(m.group(1))
    return config, vendor


def readme_keys():
    """The keys of README's table under "Configuration file": backticked
    names in the first column, a bare name after a dotted one taking its
    prefix (`tls_inspect.on_no_sni`, `on_ech`)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("\n## Configuration file\n", 1)[1].split("\n## ", 1)[0]
    keys = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        prefix = ""
        for name in re.findall(r"`([^`]+)`", line.split(" | ")[0]):
            if "." in name:
                prefix = name.rsplit(".", 1)[0] + "."
            elif prefix:
                name = prefix + name
            keys.append(name)
    return keys


def man_pages_dir():
    d = os.path.join(os.path.dirname(harness.BINARY), "doc")
    if not os.path.exists(os.path.join(d, "embargo.8")):
        raise unittest.SkipTest("no man pages next to the binary (%s): scdoc was not found "
                                "when it was built (scripts/deps.sh package)" % d)
    return d


class KeysTest(unittest.TestCase):
    maxDiff = None

    def test_manual_documents_every_configuration_key_and_no_other(self):
        config, _ = manual_keys()
        self.assertEqual(sorted(config), sorted(parser_keys("config")))
        self.assertEqual(len(config), len(set(config)), "a key documented twice")

    def test_manual_documents_every_vendor_list_key_and_no_other(self):
        _, vendor = manual_keys()
        self.assertEqual(sorted(vendor), sorted(parser_keys("vendor-list")))

    def test_readme_table_holds_the_same_keys(self):
        """Every key but the mappings that only group others and the keys of
        list items, which the README describes in prose."""
        keys = parser_keys("config")
        leaves = [k for k in keys if "[]" not in k and
                  not any(o.startswith(k + ".") for o in keys)]
        self.assertEqual(sorted(readme_keys()), sorted(leaves))

    def test_every_directive_table_is_registered(self):
        """A table left out of its module's key_table array would be missing
        from `config keys`, and so from the check above."""
        missing = []
        config_dir = os.path.join(ROOT, "config")
        for name in sorted(os.listdir(config_dir)):
            if not name.endswith(".c"):
                continue
            with open(os.path.join(config_dir, name)) as f:
                src = f.read()
            for table in re.findall(r"static const struct directive (\w+)\[\]", src):
                registered = (re.search(r"KEYS\(\"[^\"]*\",\s*%s\)" % table, src) or
                              re.search(r"\"[^\"]*\",\s*%s,\s*COUNT\(%s\)" % (table, table), src))
                if not registered:
                    missing.append("%s: %s" % (name, table))
        self.assertEqual(missing, [])

    def test_unknown_which_is_a_usage_error(self):
        p = run(harness.BINARY, "config", "keys", "nonsense")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("usage: embargo config keys [config|vendor-list]", p.stderr)


class ManPagesTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if shutil.which("man") is None:
            raise unittest.SkipTest("man not installed (man-db)")
        cls.dir = man_pages_dir()

    def render(self, page):
        env = dict(os.environ, MANWIDTH="100", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
        p = run("man", "--warnings", "-l", os.path.join(self.dir, page), env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "", "man -l %s warned" % page)
        return p.stdout

    def test_embargo_yaml_5_renders_with_every_key(self):
        text = self.render("embargo.yaml.5")
        self.assertIn("embargo.yaml - configuration and vendor list files of embargo(8)", text)
        for key in parser_keys("config") + parser_keys("vendor-list"):
            self.assertRegex(text, r"(?m)^\s+%s( \(|$)" % re.escape(key))

    def test_embargo_8_renders_with_every_command_and_option(self):
        text = self.render("embargo.8")
        for section in ("SYNOPSIS", "COMMANDS", "OPTIONS", "SIGNALS", "EXIT STATUS",
                        "ENVIRONMENT", "FILES"):
            self.assertRegex(text, r"(?m)^%s$" % section)
        usage = run(harness.BINARY, "--help").stdout
        commands = sorted(set(re.findall(r"(?m)^  embargo (\w+)", usage)) - {"run"})
        self.assertIn("status", commands)
        commands_section = text.split("\nCOMMANDS\n", 1)[1].split("\nOPTIONS\n", 1)[0]
        for cmd in commands:
            self.assertRegex(commands_section, r"(?m)^       %s\b" % cmd, cmd)
        options = sorted(set(re.findall(r"(--[a-z0-9-]+)", usage)))
        options_section = text.split("\nOPTIONS\n", 1)[1].split("\nSIGNALS\n", 1)[0]
        for opt in options:
            self.assertIn(opt, options_section)
        for sig in ("SIGHUP", "SIGUSR1", "SIGTERM"):
            self.assertIn(sig, text)


class HostConfigTest(unittest.TestCase):
    """build/embargo.host.yaml, the package's /etc/embargo/embargo.yaml."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.path = os.path.join(os.path.dirname(harness.BINARY), "embargo.host.yaml")
        if not os.path.exists(cls.path):
            raise AssertionError("%s not built (the host_files target)" % cls.path)

    def summary(self, path):
        p = run(harness.BINARY, "config", "check", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()[1:]  # "FILE: OK"
        return {l.split(":", 1)[0].strip(): l for l in lines if l and not l.startswith(" ")}

    def test_built_in_values_but_listener_admin_user_and_log(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(run(harness.BINARY, "config", "show").stdout)
            f.flush()
            builtin = self.summary(f.name)
        host = self.summary(self.path)
        differ = sorted(k for k in set(host) | set(builtin) if host.get(k) != builtin.get(k))
        # The policy version covers the sources' names: the file's differs.
        self.assertEqual(differ, ["Configuration", "Listeners", "Log", "Policy version", "User"],
                         "\n".join("%s\n%s" % (host.get(k), builtin.get(k)) for k in differ))
        self.assertEqual(host["Listeners"].split(":", 1)[1].strip(), "127.0.0.1:3128")
        self.assertIn("/var/log/embargo/decisions.log", host["Log"])
        self.assertIn("embargo when started as root", host["User"])
        # The summary does not show the admin endpoint, nor does the
        # built-in configuration have one.
        try:
            import yaml
        except ImportError:
            self.skipTest("python3-yaml not installed")
        with open(self.path) as f:
            self.assertEqual(yaml.safe_load(f)["admin"], {"listen": "127.0.0.1:9090"})

    def test_comments_of_the_built_in_configuration_are_kept(self):
        with open(self.path) as f:
            text = f.read()
        self.assertIn("# CONNECT is allowed only to these destination ports.", text)
        self.assertTrue(text.startswith("# Embargo configuration of this host"), text[:200])


class CompletionTest(unittest.TestCase):
    SCRIPT = os.path.join(ROOT, "deploy", "completion", "embargo.bash")

    @classmethod
    def setUpClass(cls):
        cls.lib = "/usr/share/bash-completion/bash_completion"
        if not os.path.exists(cls.lib):
            raise unittest.SkipTest("bash-completion not installed")

    def complete(self, line):
        """What bash completes for LINE (its last word)."""
        words = line.split(" ")
        script = ("source %s; source %s; COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=%s; "
                  "COMP_POINT=${#COMP_LINE}; _embargo embargo; printf '%%s\\n' \"${COMPREPLY[@]}\""
                  % (self.lib, self.SCRIPT, " ".join("'%s'" % w for w in words), len(words) - 1,
                     "'%s'" % line))
        p = run("bash", "-c", script)
        self.assertEqual(p.returncode, 0, p.stderr)
        return sorted(w for w in p.stdout.split("\n") if w)

    def test_commands(self):
        self.assertEqual(self.complete("embargo "), sorted(
            "run check config ca rules report lists export reload status version".split()))
        self.assertEqual(self.complete("embargo st"), ["status"])
        self.assertEqual(self.complete("embargo config "), ["check", "keys", "show"])

    def test_format_values_follow_the_command(self):
        self.assertEqual(self.complete("embargo check --format "), ["csv", "json", "text"])
        self.assertEqual(self.complete("embargo rules --format "), ["iptables", "nft"])
        self.assertEqual(self.complete("embargo export --format "),
                         sorted("rpz unbound dnsmasq hosts nft-set squid".split()))
        self.assertEqual(self.complete("embargo -c x.yaml report --format "),
                         ["csv", "html", "json", "table"])
        self.assertEqual(self.complete("embargo rules --mode "), ["intercept", "tproxy"])

    def test_options_of_a_command(self):
        self.assertEqual(self.complete("embargo status --l"), ["--live"])
        self.assertIn("--no-resolve", self.complete("embargo check --"))


if __name__ == "__main__":
    harness.main()
