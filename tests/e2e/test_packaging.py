"""What a user installs: the distribution's name and metadata, every install
line naming it, and an sdist that carries what the README links to. CI
(.ci/run) builds the sdist for real and runs tests from it unpacked."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DIST = "secretrun-cli"


def test_distribution_name_metadata_and_license():
    assert PROJECT["name"] == DIST
    # PyPI compares names with '-', '_' and '.' removed: 'secretrun' is
    # 'secret-run', another author's project.
    assert re.sub(r"[-_.]", "", PROJECT["name"].lower()) != "secretrun"
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text() and "END OF TERMS AND CONDITIONS" in (
        ROOT / "LICENSE").read_text()
    assert PROJECT["requires-python"] == ">=3.10"
    versions = {c.rsplit(" ", 1)[-1] for c in PROJECT["classifiers"] if c.startswith("Programming Language :: Python :: 3.")}
    assert {"3.10", "3.13"} <= versions
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])
    assert PROJECT["scripts"] == {"secretrun": "secretrun.launch:main"}


def tracked(*patterns: str):
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout:   # an unpacked sdist: no git
        return [str(p.relative_to(ROOT)) for pattern in patterns for p in ROOT.glob(pattern)]
    return out.stdout.split()


def test_every_install_line_names_the_distribution():
    assert re.search(r"pip install[^\n`]*?['\"]?\bsecretrun(?!-cli)(\[|['\"\s`]|$)", "pip install 'secretrun[vault]'")
    wrong = re.compile(r"pip install[^\n`]*?['\"]?\bsecretrun(?!-cli)(\[|['\"\s`]|$)")
    files = tracked("README.md", "docs/*", "examples/**", "secretrun/**/*.py", "systemd/*")
    hits = [(f, m.group(0)) for f in files if (ROOT / f).is_file()
            for m in wrong.finditer((ROOT / f).read_text(errors="replace"))]
    assert not hits


def test_the_sdist_carries_what_the_readme_links_to_and_the_tests():
    grafts = {line.split()[1] for line in (ROOT / "MANIFEST.in").read_text().splitlines()
              if line.startswith("graft ")}
    linked = set(re.findall(r"\]\(((?:docs|examples|systemd)/[^)#]*)\)", (ROOT / "README.md").read_text()))
    linked |= set(re.findall(r"`((?:examples|systemd)/[\w./@-]*)`", (ROOT / "README.md").read_text()))
    assert linked
    assert {path.split("/")[0] for path in linked} <= grafts
    assert "tests" in grafts
    for path in linked - {"examples/quickstart/.env"}:   # that one the quick start makes
        assert (ROOT / path).exists(), path
