"""Each service's Gunicorn command line names it as its logs do and gives it a metrics
directory of its own, under RUN_DIR (off the data disks), and Gunicorn's JSON configuration, which
Gunicorn's master can load without importing what must wait for the workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app.cluster import Cluster


def _option(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def test_every_service_has_its_name_and_a_metrics_directory_of_its_own(tmp_path):
    run_dir = tmp_path / "run"
    cluster = Cluster.create(data_dir=tmp_path / "data", env={"RUN_DIR": str(run_dir)}, replicas=3)
    names, dirs = {}, {}
    for service, spec in cluster.specs.items():
        if service == "redis":
            continue
        assert _option(spec.argv, "--config") == ["python:app.common.gunicorn_conf"]
        (names[service],) = _option(spec.argv, "--name")
        (env,) = _option(spec.argv, "--env")
        variable, _, path = env.partition("=")
        assert variable == "PROMETHEUS_MULTIPROC_DIR"
        dirs[service] = Path(path)
    assert names == {
        "catalog": "catalog",
        "replica-1": "order-1",
        "replica-2": "order-2",
        "replica-3": "order-3",
        "frontend": "frontend",
    }
    assert dirs["replica-2"] == run_dir / "metrics" / f"order-2-{cluster.ports.of('replica-2')}"
    assert dirs["frontend"] == run_dir / "metrics" / f"frontend-{cluster.ports.frontend}"
    assert len(set(dirs.values())) == len(dirs)


def test_loading_the_configuration_imports_neither_prometheus_nor_concurrent_futures():
    """prometheus_client chooses multiprocess mode at import, from a variable Gunicorn sets
    after loading the configuration; concurrent.futures must wait for gevent's patching."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, app.common.gunicorn_conf; "
            "print(sorted({'prometheus_client', 'concurrent.futures'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
