"""The project's own files stay in step: lock vs environment.yml, README vs Makefile vs CI."""

from __future__ import annotations

import re
import subprocess
import tomllib

from respine_nb import config

ROOT = config.ROOT


def lock_versions() -> dict:
    out = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"unpinned line in requirements.lock: {line}"
            out[name.lower().replace("_", "-")] = version
    return out


def env_versions() -> dict:
    out = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s+-\s+([A-Za-z0-9_.-]+)=([^=\s]+)$", line)
        if m and m.group(1) != "python":
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_matches_lock():
    lock, env = lock_versions(), env_versions()
    assert len(env) >= 20
    for name, version in env.items():
        assert lock.get(name) == version, f"{name}: environment.yml {version} vs lock {lock.get(name)}"


def test_every_direct_dependency_is_pinned_in_both():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = meta["dependencies"] + meta["optional-dependencies"]["test"]
    names = [re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower().replace("_", "-") for d in deps]
    lock, env = lock_versions(), env_versions()
    for name in names:
        assert name in lock, f"{name} not pinned in requirements.lock"
        assert name in env, f"{name} missing from environment.yml"
    assert lock["pandas"].startswith("2."), "lifelines 0.30 needs pandas < 3"


def test_readme_two_commands_and_ci():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "synthetic" in readme.lower()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_make_help_lists_every_target():
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z_-]*):.*?##", makefile, flags=re.M)
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True).stdout
    for t in targets:
        assert f"make {t}" in out
    for needed in ("run", "test", "lab", "bench", "help"):
        assert needed in targets


def test_gitignore_keeps_real_data_and_runs_out():
    def ignored(path):
        return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", path]).returncode == 0

    assert ignored("data/raw/real/subjects.csv")
    assert ignored("data/raw/subjects.csv")
    assert ignored("runs/anything/notebooks/01_cohort.ipynb")
    assert ignored("reports/index.html") and ignored("runs/real/report/index.html")
    assert not ignored("data/raw/synthetic/subjects.csv")
    assert not ignored("data/raw/README.md")


def readme_commands() -> list:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    return [line.split("#")[0].strip() for b in blocks for line in b.splitlines() if line.split("#")[0].strip()]


def test_every_readme_command_is_real():
    """Each command the README shows names a real make target, or parses as a respine-nb command."""
    import shlex

    from respine_nb.cli import build_parser

    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z_-]*):", makefile, flags=re.M))
    commands = readme_commands()
    assert len(commands) >= 8
    for cmd in commands:
        words = shlex.split(cmd)
        if words[0] == "make":
            assert words[1] in targets, cmd
        else:
            assert words[0] == ".venv/bin/respine-nb", cmd
            build_parser().parse_args(words[1:])  # exits (SystemExit) on a bad command


def test_make_report_builds_the_default_report():
    out = subprocess.run(["make", "-s", "-C", str(ROOT), "report"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (ROOT / "reports" / "index.html").is_file()
    assert (ROOT / "reports" / "notebooks" / "02_primary_endpoint-no-code.html").is_file()


def test_make_says_it_is_creating_the_environment():
    """Before the install (the longest silent step of a first `make run`), with how long it takes."""
    out = subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), ".venv/.installed"], capture_output=True, text=True, check=True
    ).stdout
    lines = out.splitlines()
    say = next(i for i, line in enumerate(lines) if "creating the environment" in line)
    install = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert say < install and "40 s" in lines[say]
