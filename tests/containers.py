"""A real container engine for the container tests: Debian's podman, a base
image made here with debootstrap, and examples/docker's image built from this
checkout.

No image registry is reachable from the test machines, so ``python:3.11-slim``
cannot be pulled. Its stand-in is a Debian bookworm ``minbase`` with python3
and pip (bookworm is what python:3.11-slim is built on), bootstrapped from
the Debian mirror apt already uses and ``podman import``-ed. The root
filesystem is cached as a tarball (``$SECRETRUN_TEST_CACHE``, default
``~/.cache/secretrun-test``) so that only the first run pays for debootstrap.

Two settings this machine needs, and most machines tolerate:

- the OCI runtime is ``runc`` when it is installed: crun refuses a cgroup v1
  host in hybrid mode ("cgroups in hybrid mode not supported");
- ``--ulimit nofile``/``nproc`` are given explicitly, within this process's
  hard limits: podman's default asks for more open files than the hard
  limit, and the runtime's setrlimit then fails with EPERM. nproc is also
  kept at most 32768: podman lowers its own hard limit to that, and asking
  for more fails the same way.

Run as a script, it prepares what the tests need ahead of them (CI does this
in a step of its own, so its time is measured apart)::

    python -m tests.containers base      # the base image (debootstrap once)
    python -m tests.containers example   # + examples/docker's image
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "docker"

SUITE = "bookworm"
# Bump when the recipe below changes, so a cached tarball or image is not reused.
RECIPE = 1
BASE_IMAGE = f"localhost/secretrun-test-base:{SUITE}-{RECIPE}"
PACKAGES = ("python3", "python3-pip", "python-is-python3")
# What python:3.11-slim leaves out too: documentation, translations, apt's lists.
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
           "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old")


class EngineUnavailable(Exception):
    """Why the container tests cannot run here (the skip reason)."""


def cache_dir() -> Path:
    explicit = os.environ.get("SECRETRUN_TEST_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "secretrun-test"


def base_tarball() -> Path:
    return cache_dir() / f"debian-{SUITE}-python3-{RECIPE}.tar"


def global_flags() -> list[str]:
    return ["--runtime", "runc"] if shutil.which("runc") else []


def ulimit_flags() -> list[str]:
    flags = []
    for name, limit, ceiling in (("nofile", resource.RLIMIT_NOFILE, 1 << 20),
                                 ("nproc", resource.RLIMIT_NPROC, 32768)):
        hard = resource.getrlimit(limit)[1]
        value = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


def podman(*args: str, check: bool = True, timeout: float = 120,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; text output; raises with its stderr when ``check``."""
    proc = subprocess.run(["podman", *global_flags(), *args], check=False, capture_output=True,
                          timeout=timeout, input=input)
    out = subprocess.CompletedProcess(proc.args, proc.returncode,
                                      proc.stdout.decode("utf-8", "replace"),
                                      proc.stderr.decode("utf-8", "replace"))
    if check and out.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} ... exited {out.returncode}: {out.stderr.strip()}")
    return out


def engine_problem() -> str | None:
    """None when podman can run a container here, else why not."""
    if not shutil.which("podman"):
        return "podman is not installed (apt-get install podman runc debootstrap; see docs/containers.md)"
    try:
        info = podman("info", "--format", "json", check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return "`podman info` did not answer within 60 s"
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[:300]}"
    return None


def debian_mirror() -> str:
    """The Debian archive apt uses here (deb822 .sources or one-line .list)."""
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list")),
             *sorted((apt / "sources.list.d").glob("*.sources"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for uri in re.findall(r"^\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)", text, re.MULTILINE) + \
                re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE):
            if uri.rstrip("/").endswith("/debian"):
                return uri
    return "http://deb.debian.org/debian"


def build_base_tarball(dest: Path, log=sys.stderr) -> None:
    """debootstrap a minimal bookworm with python3 and pip into ``dest``."""
    if os.geteuid() != 0:
        raise EngineUnavailable("building the base image needs root (debootstrap); "
                                f"or provide {dest}")
    if not shutil.which("debootstrap"):
        raise EngineUnavailable("debootstrap is not installed (apt-get install debootstrap)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="secretrun-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        mirror = debian_mirror()
        print(f"debootstrap {SUITE} from {mirror} ...", file=log, flush=True)
        proc = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
                               SUITE, str(rootfs), mirror], check=False, capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(f"debootstrap failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        for part in TRIMMED:
            target = rootfs / part
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        # python:3.11-slim's pip installs into the system; Debian's refuses
        # (PEP 668). The stand-in behaves like the image it stands in for.
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        partial = dest.with_suffix(".partial")
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        partial.rename(dest)


def ensure_base_image(log=sys.stderr) -> str:
    """The base image's name, importing (and first building) it if needed."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    tarball = base_tarball()
    if not tarball.exists():
        build_base_tarball(tarball, log=log)
    podman("import", "--change", 'CMD ["python3"]', "--change", "ENV LANG=C.UTF-8",
           str(tarball), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


def build_wheels(dest: Path) -> list[Path]:
    """A wheel of this checkout and of its dependencies, into ``dest``.

    Built from a copy, so that setuptools' build/ and egg-info stay out of the
    checkout. Dependencies come from pip's cache or PyPI, the image build
    itself then needs no network."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="secretrun-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache",
            ".hypothesis", "results"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
                        "--wheel-dir", str(dest), str(src)], check=True, capture_output=True, timeout=600)
    return sorted(dest.glob("*.whl"))


def build_example_image(tag: str, workdir: Path, base: str) -> None:
    """examples/docker's Dockerfile, as written, over ``base``, with
    secretrun installed from this checkout's wheel and no network."""
    context = workdir / "context"
    shutil.copytree(EXAMPLE, context)
    build_wheels(context / "wheels")
    podman("build", "--quiet", "--pull=never", "--network=none", "--layers=false", *ulimit_flags(),
           "--build-arg", f"BASE_IMAGE={base}",
           "--build-arg", "PIP_FLAGS=--no-index --find-links /tmp/wheels",
           "--tag", tag, str(context), timeout=900)


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


def inspect(name: str) -> dict:
    return json.loads(podman("inspect", name).stdout)[0]


def wait_until(predicate, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


class Container:
    """One detached container, known by its id (the tests remove it by id)."""

    def __init__(self, cid: str) -> None:
        self.id = cid

    def exec(self, *argv: str) -> str:
        return podman("exec", self.id, *argv).stdout

    def python(self, code: str) -> str:
        """Run ``python -c CODE`` inside the container (the image has no ps or curl)."""
        return self.exec("python", "-c", code)

    def logs(self) -> str:
        out = podman("logs", self.id)
        return out.stdout + out.stderr

    def state(self) -> dict:
        return inspect(self.id)["State"]

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        def seen() -> bool:
            if text in self.logs():
                return True
            if not self.state()["Running"]:
                raise AssertionError(f"the container exited before logging {text!r}:\n{self.logs()}")
            return False
        wait_until(seen, timeout, f"{text!r} in the container's log")

    def stop(self, timeout: int) -> float:
        """``podman stop -t TIMEOUT``: SIGTERM, then SIGKILL after TIMEOUT s.
        Returns how long it took."""
        started = time.monotonic()
        podman("stop", "--time", str(timeout), self.id, timeout=timeout + 60)
        return time.monotonic() - started

    def exit_code(self) -> int:
        return int(self.state()["ExitCode"])

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.id, check=False)


def main(argv: Sequence[str]) -> int:
    what = argv[0] if argv else "base"
    problem = engine_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    started = time.monotonic()
    base = ensure_base_image()
    print(f"{base}: {image_size(base) / 1e6:.1f} MB ({time.monotonic() - started:.0f} s)")
    if what == "example":
        with tempfile.TemporaryDirectory(prefix="secretrun-image-") as tmp:
            build_example_image("localhost/secretrun-example:test", Path(tmp), base)
        print(f"localhost/secretrun-example:test: {image_size('localhost/secretrun-example:test') / 1e6:.1f} MB "
              f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
