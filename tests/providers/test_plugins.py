"""A third-party provider type, installed as a distribution with an entry
point, as the README's "Writing a provider" says. On Python 3.9 this path
crashed (``entry_points(group=...)`` is 3.10+); CI runs it on the oldest and
newest supported Pythons."""

from __future__ import annotations

import textwrap

from tests.conftest import CANARY, ROOT, assert_no_canary

PLUGIN = '''
from secretrun.errors import NotFound
from secretrun.providers.base import OptionReader, Provider, Secret


class ReverseProvider(Provider):
    """Reads a secret from secretrun's environment, backwards."""

    type_name = "reverse"
    local = True

    @classmethod
    def from_config(cls, ctx, options):
        opts = OptionReader(ctx, options)
        opts.done()
        return cls(ctx)

    def fetch(self, sid):
        if sid.path not in self.ctx.environ:
            raise NotFound(f"{sid.path} is not set")
        return Secret(self.ctx.environ[sid.path][::-1])
'''


def install_plugin(site):
    (site / "reverse_store.py").write_text(PLUGIN)
    info = site / "reverse_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-store\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[secretrun.providers]\nreverse = reverse_store:ReverseProvider\n")


def test_a_plugin_provider_type_loads_from_its_entry_point(tmp_path, manifest, secretrun):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    manifest(textwrap.dedent("""
        version = 1
        [providers.rev]
        type = "reverse"
        [env]
        SECRET = "${rev:HIDDEN}"
    """))
    env = {"PYTHONPATH": f"{ROOT}:{site}", "HIDDEN": CANARY[::-1]}
    run = secretrun(child=True, env=env)
    assert run.code == 0, run.stderr
    assert run.child_env["SECRET"] == CANARY
    run = secretrun("check", env=env)
    assert run.code == 0 and "SECRET" in run.stdout and "Traceback" not in run.stderr
    assert_no_canary(run.stdout, run.stderr)


def test_an_unknown_type_lists_the_plugins_too(tmp_path, manifest, secretrun):
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site)
    manifest('version = 1\n[providers.rev]\ntype = "revers"\n')
    run = secretrun("check", env={"PYTHONPATH": f"{ROOT}:{site}"})
    assert run.code == 78 and "did you mean 'reverse'?" in run.stderr and "internal error" not in run.stderr
