"""Secrets `toystore up` makes for itself: random, 0600, and the same at every start."""

from __future__ import annotations

import stat

from app.cluster import TOKEN_FILE, Cluster
from app.common.secrets import stored_secret


def test_a_stored_secret_is_made_once_private_and_reused(tmp_path):
    path = tmp_path / "data" / "secret"
    first = stored_secret(path)
    assert len(first) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stored_secret(path) == first
    assert stored_secret(tmp_path / "other") != first


def test_a_secret_file_copied_in_with_wide_permissions_is_narrowed(tmp_path):
    path = tmp_path / "secret"
    path.write_text("given\n")
    path.chmod(0o644)
    assert stored_secret(path) == "given"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_cluster_keeps_its_token_in_the_data_dir_unless_one_is_set(tmp_path):
    made = Cluster.create(data_dir=tmp_path, env={})
    assert (tmp_path / TOKEN_FILE).read_text().strip() == made.internal_token
    assert Cluster.create(data_dir=tmp_path, env={}).internal_token == made.internal_token
    given = Cluster.create(data_dir=tmp_path, env={"INTERNAL_TOKEN": "from-env"})
    assert given.internal_token == "from-env"
    assert all(spec.env["INTERNAL_TOKEN"] == "from-env" for spec in given.specs.values())
    assert "from-env" not in repr(given) and "from-env" not in repr(given.settings)


def test_toystore_secrets_makes_what_compose_mounts(tmp_path, capsys):
    from app.cli import main
    from app.cluster import REDIS_ACL_FILE, REDIS_PASSWORD_FILE

    assert main(["secrets", str(tmp_path)]) == 0
    token = (tmp_path / TOKEN_FILE).read_text()
    password = (tmp_path / REDIS_PASSWORD_FILE).read_text().strip()
    acl = (tmp_path / REDIS_ACL_FILE).read_text()
    assert "user default off" in acl and password not in acl
    for name in (TOKEN_FILE, REDIS_PASSWORD_FILE, REDIS_ACL_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert main(["secrets", str(tmp_path)]) == 0  # kept, not replaced
    assert (tmp_path / TOKEN_FILE).read_text() == token
