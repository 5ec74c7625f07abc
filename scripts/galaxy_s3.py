"""Object storage for the local Galaxy: a real S3-protocol server (moto) on loopback.

scripts/galaxy starts `moto_server` from the package venv in Galaxy's process group (so `down`
stops it), makes the bucket, and lets the tools on the network destination reach it as
`galaxys3://neurostation/...`: a cloud-files protocol alias (aliases.json in a config folder
mounted read-only into the job container) plus credentials that jobs take from the server's
environment by name, so no secret is written into a job script or a config file.
NS_GALAXY_S3=0 turns it off; NS_GALAXY_S3_PORT sets the port (default: Galaxy's port + 1000).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

ENABLED = os.environ.get("NS_GALAXY_S3", "1") not in ("0", "false", "no", "")
ALIAS = "galaxys3"
BUCKET = "neurostation"
ACCESS_KEY = "neurostation-harness"
CONTAINER_CONFIG = "/opt/neurostation-cloudfiles"
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")


def port_for(galaxy_port: int) -> int:
    return int(os.environ.get("NS_GALAXY_S3_PORT", str(galaxy_port + 1000)))


def endpoint(galaxy_port: int) -> str:
    return f"http://127.0.0.1:{port_for(galaxy_port)}"


def write_alias(config_dir: Path, galaxy_port: int) -> None:
    """aliases.json: `galaxys3://` = the loopback S3 endpoint (read by cloud-files)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps({ALIAS: {"host": f"s3://{endpoint(galaxy_port)}/"}}, indent=2) + "\n"
    path = config_dir / "aliases.json"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def server_env(secret: str) -> dict:
    """Credentials in Galaxy's environment; jobs inherit them (never in a config file)."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": "", "AWS_DEFAULT_REGION": "us-east-1"}


def add_to_job_conf(conf: dict, config_dir: Path) -> None:
    """Give the network destinations the alias folder and the credentials (by reference:
    `-e "NAME=$NAME"` is expanded from the job's environment when the job runs)."""
    envs = conf["execution"]["environments"]
    net = envs["container_net"]
    net["docker_volumes"] = f"$defaults,{config_dir}:{CONTAINER_CONFIG}:ro"
    net["docker_env_CLOUD_FILES_DIR"] = CONTAINER_CONFIG
    for name in CREDENTIAL_VARS:
        net[f"docker_env_{name}"] = f"${name}"
    # The S3 server listens on the host's loopback, which the container reaches only through
    # the host's network namespace.
    net["docker_run_extra_arguments"] += " --network host"
    envs["local_venv"].setdefault("env", []).append({"name": "CLOUD_FILES_DIR", "value": str(config_dir)})


def moto_command(package_venv: Path, galaxy_port: int) -> list[str]:
    return [str(package_venv / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port_for(galaxy_port))]


def create_bucket(galaxy_port: int, timeout: float = 60) -> None:
    """Wait for the S3 server and create the bucket (an existing bucket is fine)."""
    deadline = time.time() + timeout
    url = f"{endpoint(galaxy_port)}/{BUCKET}"
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=5)
            return
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # BucketAlreadyOwnedByYou
                return
            raise
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"the S3 server at {endpoint(galaxy_port)} did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)


def env_lines(galaxy_port: int) -> list[str]:
    """Exports for `scripts/galaxy env`: where the harness's object storage is."""
    return [
        f"export NS_S3_ENDPOINT={endpoint(galaxy_port)}",
        f"export NS_S3_URL={ALIAS}://{BUCKET}",
    ]
