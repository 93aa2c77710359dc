"""The TOML config file: every section parsed, mistakes named, relative paths resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.errors import RegistryError
from pallet.registry.config import load_config


def test_defaults_without_a_file(tmp_path):
    config = load_config(None, tmp_path / "reg")
    assert config.addr == "127.0.0.1:5000"
    assert config.data == tmp_path / "reg"
    assert config.auth.mode == "none"
    assert config.htpasswd_path == tmp_path / "reg" / "htpasswd"


def test_full_config(tmp_path):
    path = tmp_path / "registry.toml"
    path.write_text(
        """
addr = "127.0.0.1:5050"
data = "store"
read_only = true
[auth]
mode = "token"
htpasswd = "users.htpasswd"
anonymous_pull = true
token_ttl = 60
[auth.groups]
admins = ["alice", "bob"]
[[auth.access]]
subjects = ["group:admins"]
repositories = ["*"]
actions = ["*"]
[tls]
cert = "c.pem"
key = "k.pem"
[limits]
max_manifest_bytes = 1000
[gc]
grace_seconds = 60
schedule_minutes = 5
[retention]
schedule_minutes = 60
[[retention.policy]]
repositories = ["team/*"]
keep_last = 5
max_age_days = 30
keep_tags = ["latest", "v*"]
untagged = true
[[notifications]]
url = "http://127.0.0.1:9/hook"
events = ["push"]
"""
    )
    config = load_config(path, tmp_path / "default")
    assert config.host_port == ("127.0.0.1", 5050)
    assert config.data == tmp_path / "store"
    assert config.read_only
    assert config.auth.htpasswd == tmp_path / "users.htpasswd"
    assert config.auth.groups == {"admins": ("alice", "bob")}
    assert config.auth.access[0].actions == ("pull", "push", "delete")
    assert config.tls.cert == tmp_path / "c.pem"
    assert config.limits.max_manifest_bytes == 1000
    assert config.gc.schedule_minutes == 5
    policy = config.retention.policies[0]
    assert (policy.keep_last, policy.max_age_days, policy.keep_tags, policy.untagged) == (
        5,
        30.0,
        ("latest", "v*"),
        True,
    )
    assert config.notifications[0].events == ("push",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("addr = 'nohost'", "invalid address"),
        ("[auth]\nmode = 'ldap'", "auth.mode"),
        ("[auth]\nbogus = 1", "unknown key"),
        ("[[auth.access]]\nactions = ['fly']", "unknown action"),
        ("[tls]\ncert = 'x.pem'", "both cert and key"),
        ("[gc]\ngrace_seconds = -1", "gc.grace_seconds"),
        ("[[retention.policy]]\nkeep_last = 'x'", "keep_last"),
        ("not toml [", "not valid TOML"),
        ("typo = 1", "unknown key"),
    ],
)
def test_mistakes_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RegistryError) as info:
        load_config(path, tmp_path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(RegistryError, match="cannot read config"):
        load_config(Path(tmp_path / "nope.toml"), tmp_path)
