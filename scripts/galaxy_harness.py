"""Local Galaxy test harness for NeuroStation.

Run through the front ends, not directly:
    scripts/galaxy up [--mode container|local] | down | status | url | env | sync-tools
    scripts/test-galaxy [PATHS...]

Runs with the tooling venv's Python (bioblend, PyYAML, planemo); Galaxy itself runs from its
own venv (scripts/lib.sh: ns_galaxy_venv). Everything generated lives in <repo>/.galaxy/:

    .galaxy/config/   galaxy.yml, job_conf.yml (from the templates in scripts/galaxy_config/),
                      tool_conf.xml, sanitize_allowlist.txt
    .galaxy/web_static/  Galaxy's static files plus visualizations/<name> (links; its static_dir)
    .galaxy/data/     Galaxy's data_dir (sqlite databases, datasets, job directories)
    .galaxy/galaxy.log, celery.log, galaxy.pid, state.json (mode, port, config hash),
    .galaxy/secrets.json (bootstrap key, id_secret), keys.env (URL and API keys)

The server is gunicorn (Galaxy's web app and job handlers in one process, DESIGN.md section 6)
plus a Celery worker in the same process group, which runs uploads and the set-metadata step of
every job in one warm process (NS_GALAXY_CELERY=0 turns it off: slower, one Python per step).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

import galaxy_s3

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".galaxy"
CONF = STATE / "config"
DATA = STATE / "data"
LOG = STATE / "galaxy.log"
PID_FILE = STATE / "galaxy.pid"
STATE_FILE = STATE / "state.json"
SECRETS_FILE = STATE / "secrets.json"
KEYS_FILE = STATE / "keys.env"
CELERY_LOG = STATE / "celery.log"
S3_LOG = STATE / "s3.log"
TOOLS = ROOT / "tools"
WORKFLOWS = ROOT / "workflows"
VISUALIZATIONS = ROOT / "visualizations"
PACKAGE_VENV = ROOT / ".venv"
ARTIFACTS = ROOT / "artifacts" / "planemo"
LIB_SH = ROOT / "scripts" / "lib.sh"
CONFIG_TEMPLATES = ROOT / "scripts" / "galaxy_config"
# Not STATE/static: Galaxy (GALAXY_ROOT_DIR=STATE) also scans <root>/static/plugins/visualizations
# and would find every plugin twice.
STATIC = STATE / "web_static"
S3_CONFIG = CONF / "cloudfiles"  # cloud-files aliases for the loopback S3 server (galaxy_s3.py)

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
START_TIMEOUT = int(os.environ.get("NS_GALAXY_START_TIMEOUT", "600"))
MODES = ("container", "local")

ADMIN_EMAIL = "admin@neurostation.local"
USER_EMAIL = "test@neurostation.local"
USER_NAME = "nstest"
ADMIN_NAME = "nsadmin"

# Local runner workers = jobs running at once (tests run in parallel against the server).
# The job and Galaxy settings themselves are templates in scripts/galaxy_config/.
JOB_WORKERS = int(os.environ.get("NS_GALAXY_JOB_WORKERS", "4"))
# A Celery worker next to the web process runs uploads and job metadata (see start_server).
CELERY = os.environ.get("NS_GALAXY_CELERY", "1") not in ("0", "false", "no", "")
CELERY_THREADS = int(os.environ.get("NS_GALAXY_CELERY_THREADS", "2"))
# GALAXY_SLOTS each tool job gets (its process pool size); 1 keeps parallel tests from
# oversubscribing a small machine.
JOB_SLOTS = int(os.environ.get("NS_GALAXY_SLOTS", "1"))

# Tool ids whose container needs the network (object storage, a Dask scheduler); in container
# mode they go to the `container_net` environment, everything else runs with --network none.
# Every tool that writes to a URL or reads a JSON volume reference may reach object storage.
NETWORK_TOOL_IDS: list[str] = [
    "ns_ingest_volume", "ns_stitch_tiles", "ns_image_info", "ns_cutout_volume", "ns_pyramid_volume",
    "ns_register_to_atlas",
    "ns_label_objects", "ns_threshold_image", "ns_filter_image", "ns_measure_objects",
    "ns_build_contact_graph", "ns_detect_spots", "ns_classify_pixels", "ns_classify_objects",
    "ns_count_objects", "ns_compare_segmentations", "ns_build_meshes",
    "ns_make_viewer_link", "ns_make_qc_images",
]

# Tool ids whose HTML outputs Galaxy should display unsanitized (e.g. a report tool that
# embeds its own scripts/styles); written to sanitize_allowlist.txt.
SANITIZE_ALLOWLIST_TOOL_IDS: list[str] = []

# Galaxy's built-in collection operation tools that workflows use, by file name in the
# installed package (galaxy/tools/); only files that exist there are listed.
COLLECTION_TOOL_FILES = [
    "build_list.xml",
    "build_list_1.2.0.xml",
    "extract_dataset.xml",
    "filter_failed_collection.xml",
    "filter_failed_collection_1.1.0.xml",
    "filter_empty_collection.xml",
    "filter_empty_collection_1.1.0.xml",
    "flatten_collection.xml",
    "merge_collection.xml",
    "nest_collection.xml",
    "relabel_from_file.xml",
    "sort_collection_list.xml",
    "apply_rules.xml",
    "zip_collection.xml",
    "unzip_collection.xml",
    "duplicate_file_to_collection.xml",
    "harmonize_two_collections_list.xml",
    "cross_product_flat.xml",
    "cross_product_nested.xml",
    "tag_collection_from_file.xml",
    "filter_from_file.xml",
    "filter_from_file_1.1.0.xml",
    "keep_success_collection.xml",
    "keep_success_collection_1.1.0.xml",
]

# Tool panel section names per stage folder of tools/ (other folders get a title-cased name).
SECTION_NAMES = {
    "ingest": "Ingest",
    "storage": "Storage",
    "processing": "Processing",
    "analysis": "Analysis",
    "visualize": "Visualize",
    "info": "Info",
}
SECTION_ORDER = list(SECTION_NAMES)
# Labels for sub-folders of a stage folder (tools/analysis/fmri/ -> "fMRI" inside Analysis).
LABEL_NAMES = {"fmri": "fMRI"}
NOT_TOOLS = {"macros.xml", "datatypes_conf.xml"}


def log(msg: str) -> None:
    print(f"[galaxy] {msg}", file=sys.stderr, flush=True)


def die(msg: str, code: int = 1) -> None:
    log(f"error: {msg}")
    sys.exit(code)


# --------------------------------------------------------------------------------------------
# venvs (through scripts/lib.sh so the cache keys stay in one place)
# --------------------------------------------------------------------------------------------


def lib_sh(function: str) -> Path:
    out = subprocess.run(
        ["bash", "-c", f'source "{LIB_SH}" && {function}'],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def galaxy_venv() -> Path:
    venv = lib_sh("ns_galaxy_venv")
    if not (venv / "bin" / "gunicorn").exists():
        die(f"Galaxy venv {venv} has no gunicorn")
    return venv


def galaxy_package_dir(venv: Path) -> Path:
    matches = sorted(venv.glob("lib/python3*/site-packages/galaxy"))
    if not matches:
        die(f"no galaxy package in {venv}")
    return matches[0]


# --------------------------------------------------------------------------------------------
# state
# --------------------------------------------------------------------------------------------


def port() -> int:
    return int(os.environ.get("NS_GALAXY_PORT", DEFAULT_PORT))


def url_for(p: int) -> str:
    return f"http://{HOST}:{p}"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_text(path: Path, text: str, mode: int | None = None) -> bool:
    """Write only when the content changes (Galaxy watches some of these files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    if mode is not None:
        tmp.chmod(mode)
    tmp.replace(path)
    return True


def load_secrets() -> dict:
    data = read_json(SECRETS_FILE)
    changed = False
    for key in ("bootstrap_admin_api_key", "id_secret", "s3_secret"):
        if not data.get(key):
            data[key] = secrets.token_hex(16)
            changed = True
    if changed:
        write_text(SECRETS_FILE, json.dumps(data, indent=2) + "\n", mode=0o600)
    return data


def running_pid() -> int | None:
    """The pid (= process group id) of the server we started, if it is still alive."""
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    if "gunicorn" not in cmdline and "galaxy" not in cmdline:
        return None  # pid reused by something else
    try:
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return None
    except (OSError, IndexError):
        pass
    return pid


def api_version(url: str, timeout: float = 5) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/api/version", timeout=timeout) as resp:
            return json.loads(resp.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def port_in_use(p: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((HOST, p)) == 0


# --------------------------------------------------------------------------------------------
# config generation
# --------------------------------------------------------------------------------------------


def tool_files() -> list[Path]:
    """Every tool XML under tools/ (root element <tool>), sorted by path."""
    files = []
    for path in sorted(TOOLS.rglob("*.xml")):
        if path.name in NOT_TOOLS or any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        if tool_id_of(path) is None and not _looks_like_tool(path):
            continue
        files.append(path)
    return files


def _looks_like_tool(path: Path) -> bool:
    try:
        head = path.read_text(errors="replace")[:4096]
    except OSError:
        return False
    return bool(re.search(r"<tool[\s>]", head))


def tool_id_of(path: Path) -> str | None:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError):
        return None
    if root.tag != "tool":
        return None
    return root.get("id")


def section_of(path: Path) -> str:
    rel = path.relative_to(TOOLS)
    return rel.parts[0] if len(rel.parts) > 1 else "misc"


def tool_conf_xml(galaxy_pkg: Path) -> str:
    by_section: dict[str, list[Path]] = {}
    for path in tool_files():
        by_section.setdefault(section_of(path), []).append(path)
    order = [s for s in SECTION_ORDER if s in by_section] + sorted(s for s in by_section if s not in SECTION_ORDER)
    lines = [
        "<?xml version='1.0' encoding='utf-8'?>",
        "<!-- Generated by scripts/galaxy; edits are overwritten. Galaxy polls this file and the",
        "     tool files it lists (and their macros) and reloads the toolbox when they change. -->",
        '<toolbox monitor="true">',
        '  <section id="getext" name="Get Data">',
        '    <tool file="data_source/upload.xml" />',
        "  </section>",
    ]
    for section in order:
        name = SECTION_NAMES.get(section, section.replace("_", " ").title())
        lines.append(f'  <section id="neurostation_{section}" name={quoteattr("NeuroStation · " + name)}>')
        label = None  # a sub-folder (tools/analysis/fmri/) becomes a label inside the section
        for path in sorted(by_section[section], key=lambda p: (len(p.relative_to(TOOLS).parts), p)):
            rel = path.relative_to(TOOLS).parts
            if len(rel) > 2 and rel[1] != label:
                label = rel[1]
                text = LABEL_NAMES.get(label, label.replace("_", " ").title())
                lines.append(f"    <label id={quoteattr(f'neurostation_{section}_{label}')} text={quoteattr(text)} />")
            lines.append(f"    <tool file={quoteattr(str(path))} />")
        lines.append("  </section>")
    lines.append('  <section id="collection_operations" name="Collection Operations">')
    for name in COLLECTION_TOOL_FILES:
        if (galaxy_pkg / "tools" / name).exists():
            lines.append(f'    <tool file="${{model_tools_path}}/{name}" />')
    lines.append("  </section>")
    lines.append("</toolbox>")
    return "\n".join(lines) + "\n"


def render_template(name: str, values: dict) -> dict:
    """Load scripts/galaxy_config/<name> with its ${...} placeholders filled in."""
    import string

    import yaml

    text = string.Template((CONFIG_TEMPLATES / name).read_text()).substitute(values)
    return yaml.safe_load(text)


def job_conf(mode: str) -> dict:
    conf = render_template(
        "job_conf.yml",
        {
            "job_workers": JOB_WORKERS,
            "job_slots": JOB_SLOTS,
            "package_venv": PACKAGE_VENV,
            "default_environment": "container" if mode == "container" else "local_venv",
        },
    )
    net_env = "container_net" if mode == "container" else "local_venv"
    conf["tools"] += [{"id": tool_id, "environment": net_env} for tool_id in NETWORK_TOOL_IDS]
    if galaxy_s3.ENABLED:
        galaxy_s3.add_to_job_conf(conf, S3_CONFIG)
    return conf


def galaxy_config(mode: str, p: int, galaxy_pkg: Path, sec: dict) -> dict:
    cfg = render_template(
        "galaxy.yml",
        {
            "data_dir": DATA,
            "config_dir": CONF,
            "repo": ROOT,
            "galaxy_pkg": galaxy_pkg,
            "admin_users": f"{ADMIN_EMAIL},{USER_EMAIL}",
            "bootstrap_admin_api_key": sec["bootstrap_admin_api_key"],
            "id_secret": sec["id_secret"],
            "url": url_for(p),
        },
    )
    galaxy = cfg["galaxy"]
    if CELERY:
        galaxy.update(
            {
                "enable_celery_tasks": True,
                # Set metadata in the Celery worker, not in a new Python process per job.
                "metadata_strategy": "directory_celery",
                # Celery's tasks and Galaxy's control messages go through a sqlite file of their
                # own (kombu's SQLAlchemy transport). Its publish drops a message when the commit
                # fails with "database is locked" (sqlite's default wait is 5 s; a lost task here
                # hung the job waiting for it), so let sqlite wait up to a minute for the lock.
                # (kombu's filesystem transport was worse: it read half-written task files.)
                "amqp_internal_connection": f"sqlalchemy+sqlite:///{DATA}/control.sqlite?isolation_level=IMMEDIATE&timeout=60",
                "celery_conf": {
                    "broker_url": None,  # = amqp_internal_connection
                    "result_backend": f"db+sqlite:///{DATA}/results.sqlite?timeout=60",
                    "task_routes": {"galaxy.fetch_data": "galaxy.external", "galaxy.set_job_metadata": "galaxy.external"},
                },
            }
        )
    if VISUALIZATIONS.is_dir():
        galaxy["visualization_plugins_directory"] = str(VISUALIZATIONS)
        # Galaxy's client loads a plugin's entry point from /static/plugins/visualizations/<name>/
        # static/, which it serves from static_dir only: point static_dir at a staged copy.
        galaxy["static_dir"] = f"{STATIC}/"
    # Extra settings: NS_GALAXY_EXTRA_CONFIG=path/to/extra.yml (a mapping merged into galaxy:).
    extra = os.environ.get("NS_GALAXY_EXTRA_CONFIG")
    if extra:
        import yaml

        galaxy.update(yaml.safe_load(Path(extra).read_text()) or {})
    return cfg


def stage_static(galaxy_pkg: Path) -> None:
    """Galaxy's static files plus our visualization plugins at plugins/visualizations/<name>, as
    links in STATIC (Galaxy serves plugin entry points from its static dir only). Builds the
    Neuroglancer client first (scripts/build-viewer, cached)."""
    if (VISUALIZATIONS / "neuroglancer" / "package.json").exists():
        try:
            lib_sh("ns_viewer_bundle")
        except subprocess.CalledProcessError:
            log("warning: scripts/build-viewer failed: the Neuroglancer visualization has no client")
    plugins = STATIC / "plugins" / "visualizations"
    plugins.mkdir(parents=True, exist_ok=True)
    galaxy_static = galaxy_pkg / "webapps" / "base" / "static"
    wanted = {entry.name: entry for entry in galaxy_static.iterdir() if entry.name != "plugins"}
    for plugin in VISUALIZATIONS.iterdir():
        if (plugin / "static" / f"{plugin.name}.xml").exists():
            wanted[f"plugins/visualizations/{plugin.name}"] = plugin
    for link in [*STATIC.iterdir(), *plugins.iterdir()]:
        if link.is_symlink():
            link.unlink()
    for name, target in wanted.items():
        (STATIC / name).symlink_to(target)


def write_configs(mode: str, p: int, galaxy_pkg: Path) -> str:
    """Write the config files; return a hash of what needs a restart when it changes."""
    import yaml

    sec = load_secrets()
    for d in (CONF, DATA):
        d.mkdir(parents=True, exist_ok=True)
    header = "# Generated by scripts/galaxy (scripts/galaxy_harness.py); edits are overwritten.\n"
    galaxy_yml = header + yaml.safe_dump(galaxy_config(mode, p, galaxy_pkg, sec), sort_keys=False, width=120)
    job_yml = header + yaml.safe_dump(job_conf(mode), sort_keys=False, width=120)
    write_text(CONF / "galaxy.yml", galaxy_yml)
    write_text(CONF / "job_conf.yml", job_yml)
    write_text(CONF / "sanitize_allowlist.txt", "".join(f"{t}\n" for t in SANITIZE_ALLOWLIST_TOOL_IDS))
    write_text(CONF / "tool_conf.xml", tool_conf_xml(galaxy_pkg))
    if VISUALIZATIONS.is_dir():
        stage_static(galaxy_pkg)
    if galaxy_s3.ENABLED:
        galaxy_s3.write_alias(S3_CONFIG, p)
    # tool_conf.xml is reloaded live, so it is not part of the restart hash; the datatypes are
    # only read at start-up, so they are.
    h = hashlib.sha256()
    for text in (galaxy_yml, job_yml, (TOOLS / "datatypes_conf.xml").read_text() if (TOOLS / "datatypes_conf.xml").exists() else ""):
        h.update(text.encode())
    h.update(str(galaxy_pkg).encode())
    # How the processes are started matters too (Celery worker threads, its app module).
    h.update(f"celery={CELERY} threads={CELERY_THREADS}".encode())
    h.update((CONFIG_TEMPLATES / "celery_warm.py").read_bytes())
    h.update((CONFIG_TEMPLATES / "galaxy_web.py").read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# start / stop
# --------------------------------------------------------------------------------------------


def tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start_server(mode: str, p: int, venv: Path, galaxy_pkg: Path, config_hash: str) -> None:
    if port_in_use(p):
        die(f"port {p} on {HOST} is already in use by another process (set NS_GALAXY_PORT)")
    env = dict(os.environ)
    for k in ("PYTHONPATH", "PYTHONHOME", "GALAXY_CONFIG_FILE"):
        env.pop(k, None)
    env.update(
        {
            "GALAXY_CONFIG_FILE": str(CONF / "galaxy.yml"),
            "GALAXY_ROOT_DIR": str(STATE),
            # Job scripts activate this venv for uploads and metadata (DESIGN.md section 6).
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{venv}/bin:{env.get('PATH', '/usr/bin:/bin')}",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if galaxy_s3.ENABLED:
        env.update(galaxy_s3.server_env(load_secrets()["s3_secret"]))
    cmd = [
        str(venv / "bin" / "gunicorn"),
        # galaxy_web (scripts/galaxy_config/) = Galaxy's fast_factory + plugin hrefs fixed.
        "galaxy_web:factory()", "--pythonpath", str(CONFIG_TEMPLATES),
        "--timeout", "300",
        "-k", "galaxy.webapps.galaxy.workers.Worker",
        "-b", f"{HOST}:{p}",
        "--workers=1",
        "--config", "python:galaxy.web_stack.gunicorn_config",
        "--preload",
    ]  # fmt: skip
    STATE.mkdir(parents=True, exist_ok=True)
    for logfile in (LOG, CELERY_LOG):  # keep one previous log, start a new one when big
        with contextlib.suppress(OSError):
            if logfile.stat().st_size > 50_000_000:
                logfile.replace(logfile.with_name(logfile.name + ".1"))
    banner = f"\n===== {time.strftime('%F %T')} scripts/galaxy up --mode {mode} (port {p}) =====\n"
    if CELERY:
        # The Celery worker shares the server's process group: `down` stops both. It runs the
        # uploads and the set-metadata steps in one long-lived process instead of a fresh
        # Python (about 15 s of imports each) per job.
        with CELERY_LOG.open("a") as clog:
            clog.write(banner)
        celery = [
            str(venv / "bin" / "celery"), "--app", "celery_warm", "worker",
            "--concurrency", str(CELERY_THREADS), "--pool", "threads",
            "--queues", "celery,galaxy.internal,galaxy.external",
            "--loglevel", "INFO", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        # celery_warm (scripts/galaxy_config/) = galaxy.celery + building the app at start.
        script = (
            f"PYTHONPATH={shlex.quote(str(CONFIG_TEMPLATES))} NS_GALAXY_CELERY_THREADS={CELERY_THREADS} {shlex.join(celery)} >> {shlex.quote(str(CELERY_LOG))} 2>&1 < /dev/null &\n"
            'exec "$@"'
        )
        cmd = ["bash", "-c", script, "galaxy", *cmd]
    if galaxy_s3.ENABLED:
        # The S3 server shares the process group too; its log goes next to Galaxy's.
        moto = f"{shlex.join(galaxy_s3.moto_command(PACKAGE_VENV, p))} >> {shlex.quote(str(S3_LOG))} 2>&1 < /dev/null &\n"
        if cmd[0] == "bash":
            cmd[2] = moto + cmd[2]
        else:
            cmd = ["bash", "-c", moto + 'exec "$@"', "galaxy", *cmd]
    with LOG.open("ab") as logf:
        logf.write(banner.encode())
        logf.flush()
        # A new session: the server and everything it forks (not its jobs, which Galaxy puts in
        # their own process groups and stops itself on shutdown) share process group = pid.
        proc = subprocess.Popen(
            cmd, cwd=str(STATE), env=env, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
        )
    write_text(PID_FILE, f"{proc.pid}\n")
    started = time.time()
    state = {"mode": mode, "port": p, "url": url_for(p), "pid": proc.pid, "config_hash": config_hash, "venv": str(venv), "celery": CELERY, "started": started}
    write_text(STATE_FILE, json.dumps(state, indent=2) + "\n")
    log(f"starting Galaxy ({mode} mode) on {url_for(p)}, pid {proc.pid}, log {LOG.relative_to(ROOT)}")
    while True:
        if proc.poll() is not None:
            print(tail(LOG), file=sys.stderr)
            PID_FILE.unlink(missing_ok=True)
            die(f"Galaxy exited with code {proc.returncode} during start-up (log above: {LOG})")
        if api_version(url_for(p), timeout=3):
            break
        if time.time() - started > START_TIMEOUT:
            print(tail(LOG), file=sys.stderr)
            stop_server(quiet=True)
            die(f"Galaxy did not answer /api/version within {START_TIMEOUT} s (log above: {LOG})")
        time.sleep(2)
    elapsed = time.time() - started
    state["ready_seconds"] = round(elapsed, 1)
    write_text(STATE_FILE, json.dumps(state, indent=2) + "\n")
    log(f"Galaxy answered after {elapsed:.1f} s")
    if galaxy_s3.ENABLED:
        try:
            galaxy_s3.create_bucket(p)
        except (RuntimeError, OSError) as exc:
            print(tail(S3_LOG), file=sys.stderr)
            stop_server(quiet=True)
            die(f"object storage: {exc} (log above: {S3_LOG})")
        log(f"S3 server on {galaxy_s3.endpoint(p)}: tools reach it as {galaxy_s3.ALIAS}://{galaxy_s3.BUCKET}/...")
    if CELERY:
        while not celery_ready():
            if time.time() - started > START_TIMEOUT:
                print(tail(CELERY_LOG), file=sys.stderr)
                stop_server(quiet=True)
                die(f"the Celery worker did not start within {START_TIMEOUT} s (log above: {CELERY_LOG})")
            time.sleep(2)
        log(f"Celery worker ready after {time.time() - started:.1f} s")


def celery_ready() -> bool:
    """The worker of the current run logged "ready" (after the last start banner)."""
    try:
        text = CELERY_LOG.read_text(errors="replace")
    except OSError:
        return False
    return "Galaxy app built in the worker" in text.rsplit("===== ", 1)[-1]


def stop_server(quiet: bool = False, timeout: float = 60) -> bool:
    pid = running_pid()
    if pid is None:
        PID_FILE.unlink(missing_ok=True)
        if not quiet:
            log("Galaxy is not running")
        return False
    if not quiet:
        log(f"stopping Galaxy (process group {pid})")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and _group_alive(pid):
        time.sleep(0.5)
    if _group_alive(pid):
        log(f"Galaxy did not stop within {timeout:.0f} s; killing process group {pid}")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        time.sleep(1)
    PID_FILE.unlink(missing_ok=True)
    return True


def group_members(pgid: int, name: str) -> list[int]:
    """Live processes of process group pgid whose command line mentions name."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            if name in (stat.parent / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombie-only groups (a child we are not reaping) count as gone.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# --------------------------------------------------------------------------------------------
# users and keys
# --------------------------------------------------------------------------------------------


def ensure_user_key(gi, email: str, username: str) -> str:
    users = gi.users.get_users(f_email=email)
    if users:
        user = users[0]
    else:
        user = gi.users.create_local_user(username, email, secrets.token_urlsafe(16))
    key = gi.users.get_user_apikey(user["id"])
    if not key or key == "Not available.":
        key = gi.users.create_user_apikey(user["id"])
    return key


def ensure_keys(url: str) -> dict:
    from bioblend.galaxy import GalaxyInstance

    sec = load_secrets()
    gi = GalaxyInstance(url, key=sec["bootstrap_admin_api_key"])
    admin_key = ensure_user_key(gi, ADMIN_EMAIL, ADMIN_NAME)
    user_key = ensure_user_key(gi, USER_EMAIL, USER_NAME)
    keys = {"GALAXY_URL": url, "GALAXY_ADMIN_KEY": admin_key, "GALAXY_USER_KEY": user_key}
    write_text(KEYS_FILE, "".join(f"{k}={v}\n" for k, v in keys.items()), mode=0o600)
    return keys


def read_keys() -> dict:
    keys = {}
    try:
        for line in KEYS_FILE.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                keys[k.strip()] = v.strip()
    except OSError:
        pass
    return keys


def keys_valid(keys: dict) -> bool:
    if not all(keys.get(k) for k in ("GALAXY_URL", "GALAXY_ADMIN_KEY", "GALAXY_USER_KEY")):
        return False
    try:
        req = urllib.request.Request(f"{keys['GALAXY_URL']}/api/users/current", headers={"x-api-key": keys["GALAXY_USER_KEY"]})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return bool(json.loads(resp.read().decode()).get("email"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def harness_lock():
    """Serialize up/down: two `up`s at once (e.g. scripts/test and a test-galaxy run) must not
    both start a server; the second waits and then finds it up."""
    import fcntl

    STATE.mkdir(parents=True, exist_ok=True)
    with (STATE / "harness.lock").open("w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another scripts/galaxy up/down is in progress; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def cmd_up(mode: str, quiet_if_up: bool = False) -> dict:
    with harness_lock():
        return _cmd_up(mode, quiet_if_up)


def _cmd_up(mode: str, quiet_if_up: bool = False) -> dict:
    p = port()
    venv = galaxy_venv()
    galaxy_pkg = galaxy_package_dir(venv)
    config_hash = write_configs(mode, p, galaxy_pkg)
    state = read_json(STATE_FILE)
    pid = running_pid()
    if pid is not None:
        same = state.get("mode") == mode and state.get("port") == p and state.get("config_hash") == config_hash
        celery_ok = not CELERY or bool(group_members(pid, "celery"))
        if same and celery_ok and (api_version(url_for(p)) or _wait_ready(pid, url_for(p))):
            keys = read_keys()
            if not keys_valid(keys):
                keys = ensure_keys(url_for(p))
            if not quiet_if_up:
                print(url_for(p))
            return keys
        why = (
            f"mode {state.get('mode')} -> {mode}"
            if state.get("mode") != mode
            else f"port {state.get('port')} -> {p}"
            if state.get("port") != p
            else "configuration changed"
            if state.get("config_hash") != config_hash
            else "its Celery worker is gone"
            if not celery_ok
            else "not answering"
        )
        log(f"restarting Galaxy ({why})")
        warn_live_runs("restarting Galaxy")
        stop_server(quiet=True)
    start_server(mode, p, venv, galaxy_pkg, config_hash)
    keys = ensure_keys(url_for(p))
    log(f"keys written to {KEYS_FILE.relative_to(ROOT)} (scripts/galaxy env)")
    print(url_for(p))
    return keys


def _wait_ready(pid: int, url: str) -> bool:
    """The server is ours and alive but not answering yet (still starting): wait for it."""
    state = read_json(STATE_FILE)
    deadline = state.get("started", time.time()) + START_TIMEOUT
    if time.time() < deadline:
        log("Galaxy is starting; waiting for it")
    while time.time() < deadline:
        if running_pid() != pid:
            return False
        if api_version(url, timeout=3):
            return True
        time.sleep(2)
    return False


def warn_live_runs(action: str) -> None:
    runs = live_test_runs()
    if runs:
        log(f"warning: {action} while {len(runs)} scripts/test-galaxy run(s) use this server (pids {', '.join(map(str, runs))})")


def cmd_down() -> None:
    with harness_lock():
        if running_pid() is not None:
            warn_live_runs("stopping Galaxy")
        if stop_server():
            log("stopped")


def cmd_status() -> int:
    state = read_json(STATE_FILE)
    pid = running_pid()
    if pid is None:
        print("down")
        return 1
    url = state.get("url", url_for(port()))
    version = api_version(url)
    if version:
        celery = ""
        if state.get("celery"):
            celery = " celery=" + ("up" if group_members(pid, "celery") else "DOWN")
        print(f"up {url} mode={state.get('mode')} pid={pid} galaxy={version.get('version_major')}.{version.get('version_minor')}{celery}")
        return 0
    print(f"starting {url} mode={state.get('mode')} pid={pid} (not answering yet)")
    return 2


def cmd_url() -> None:
    state = read_json(STATE_FILE)
    print(state.get("url") if running_pid() and state.get("url") else url_for(port()))


def cmd_env() -> int:
    keys = read_keys()
    if not keys:
        die("no keys yet: run scripts/galaxy up")
    for k, v in keys.items():
        print(f"export {k}={shlex.quote(v)}")
    if galaxy_s3.ENABLED:
        print("\n".join(galaxy_s3.env_lines(read_json(STATE_FILE).get("port", port()))))
    return 0


# --------------------------------------------------------------------------------------------
# tool sync: make sure the running server has loaded the current tool files
# --------------------------------------------------------------------------------------------


def _api(url: str, path: str, key: str, timeout: float = 30):
    req = urllib.request.Request(f"{url}/api/{path}", headers={"x-api-key": key})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        body = resp.read().decode()
    return body


def local_tool_source(path: Path) -> str | None:
    """The tool source as Galaxy serves it (macros expanded), from the file on disk."""
    try:
        from galaxy.tool_util.parser import get_tool_source

        return get_tool_source(str(path)).to_string()
    except Exception:
        return None


def server_tool_source(url: str, key: str, tool_id: str) -> str | None:
    try:
        return _api(url, f"tools/{urllib.request.quote(tool_id, safe='')}/raw_tool_source", key)
    except (urllib.error.URLError, OSError):
        return None


def sync_tools(keys: dict, paths: list[Path] | None = None, timeout: float = 90) -> dict[Path, str]:
    """Regenerate tool_conf.xml, then wait until the server serves each tool as it is on disk.

    Returns {path: problem} for tools the server does not have in their current form.
    """
    state = read_json(STATE_FILE)
    galaxy_pkg = galaxy_package_dir(Path(state["venv"]))
    if write_text(CONF / "tool_conf.xml", tool_conf_xml(galaxy_pkg)):
        log("tool_conf.xml changed; Galaxy reloads its toolbox")
    url, admin = keys["GALAXY_URL"], keys["GALAXY_ADMIN_KEY"]
    paths = paths if paths is not None else tool_files()
    pending: dict[Path, tuple[str, str | None]] = {}
    problems: dict[Path, str] = {}
    for path in paths:
        tool_id = tool_id_of(path)
        if tool_id is None:
            problems[path] = "not a parseable <tool> file"
            continue
        pending[path] = (tool_id, local_tool_source(path))
    deadline = time.time() + timeout
    while pending and time.time() < deadline:
        for path, (tool_id, want) in list(pending.items()):
            have = server_tool_source(url, admin, tool_id)
            if have is not None and (want is None or have == want):
                del pending[path]
        if pending:
            time.sleep(2)
    if pending:
        # Last resort: ask Galaxy to reload those tools explicitly, then check once more.
        for path, (tool_id, _want) in pending.items():
            with contextlib.suppress(urllib.error.URLError, OSError):
                _api(url, f"tools/{urllib.request.quote(tool_id, safe='')}/reload", admin)
        time.sleep(3)
        for path, (tool_id, want) in pending.items():
            have = server_tool_source(url, admin, tool_id)
            if have is None:
                problems[path] = f"Galaxy has not loaded tool {tool_id} (tool loading errors in {LOG})"
            elif want is not None and have != want:
                problems[path] = f"Galaxy serves a different version of {tool_id} than the file on disk"
    return problems


def cmd_sync_tools() -> int:
    if running_pid() is None:
        die("Galaxy is not running: scripts/galaxy up")
    keys = read_keys()
    problems = sync_tools(keys)
    for path, problem in problems.items():
        log(f"{path.relative_to(ROOT)}: {problem}")
    if not problems:
        log(f"all {len(tool_files())} tools are loaded as on disk")
    return 1 if problems else 0


# --------------------------------------------------------------------------------------------
# scripts/test-galaxy
# --------------------------------------------------------------------------------------------

WORKFLOW_SUFFIXES = (".ga", ".gxwf.yml", ".gxwf.yaml")


def is_workflow(path: Path) -> bool:
    return path.name.endswith(WORKFLOW_SUFFIXES)


def workflow_tests_file(path: Path) -> Path | None:
    # planemo's rule: the name without its last extension + "-tests.yml" (x.gxwf-tests.yml)
    stem = path.name.rsplit(".", 1)[0]
    for candidate in (path.with_name(f"{stem}-tests.yml"), path.with_name(f"{stem}-test.yml"), path.with_name(f"{stem}-tests.yaml")):
        if candidate.exists():
            return candidate
    return None


def default_targets() -> list[Path]:
    targets = tool_files()
    if WORKFLOWS.is_dir():
        targets += sorted(p for p in WORKFLOWS.rglob("*") if p.is_file() and is_workflow(p) and workflow_tests_file(p))
    return targets


def expand_targets(args: list[str]) -> list[Path]:
    if not args:
        return default_targets()
    out: list[Path] = []
    for arg in args:
        path = Path(arg).resolve()
        if path.is_dir():
            tools = [p for p in tool_files() if path == p or path in p.parents]
            wfs = sorted(p for p in path.rglob("*") if p.is_file() and is_workflow(p) and workflow_tests_file(p))
            if not tools and not wfs:
                die(f"{arg}: no tool XML or tested workflow in this folder")
            out += tools + wfs
        elif path.is_file():
            if path.name.endswith(("-tests.yml", "-test.yml", "-tests.yaml")):
                stem = re.sub(r"-tests?\.ya?ml$", "", path.name)
                wf = [path.with_name(stem + s) for s in (*WORKFLOW_SUFFIXES, ".yml", ".yaml")
                      if path.with_name(stem + s).exists() and is_workflow(path.with_name(stem + s))]
                if not wf:
                    die(f"{arg}: no workflow next to this test file")
                out.append(wf[0])
            else:
                out.append(path)
        else:
            die(f"{arg}: no such file or folder")
    seen: set[Path] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


def count_tests(path: Path) -> int:
    """Number of test cases in a tool XML (macros expanded) or a workflow's tests file."""
    if is_workflow(path):
        import yaml

        tests = workflow_tests_file(path)
        try:
            data = yaml.safe_load(tests.read_text()) if tests else None
        except Exception:
            return 0
        return len(data) if isinstance(data, list) else 0
    try:
        from galaxy.tool_util.parser import get_tool_source

        source = get_tool_source(str(path))
        tests = source.parse_tests_to_dict().get("tests", [])
        return len(tests)
    except Exception:
        return 0


def report_name(path: Path) -> str:
    """Report file stem for a tool or workflow: its file name without suffix."""
    name = path.name
    for suffix in WORKFLOW_SUFFIXES + (".xml",):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^\w.-]+", "_", name)


class Job:
    """One planemo run: every test of a file, or one test case of it (--test_index)."""

    def __init__(self, path: Path, index: int | None, n_tests: int, run_dir: Path, name: str):
        self.path = path
        self.index = index  # 1-based planemo --test_index, None = all tests of the file
        self.n_tests = n_tests
        base = name + (f"__{index}" if index else "")
        self.json = run_dir / f"{base}.json"
        self.html = run_dir / f"{base}.html"
        self.log = run_dir / f"{base}.log"
        self.returncode: int | None = None
        self.seconds = 0.0


def planemo_exe() -> str:
    return str(Path(sys.executable).parent / "planemo")


def planemo_cmd(job: Job, keys: dict, timeout: int) -> list[str]:
    cmd = [
        planemo_exe(), "test",
        "--engine", "external_galaxy",
        "--galaxy_url", keys["GALAXY_URL"],
        "--galaxy_admin_key", keys["GALAXY_ADMIN_KEY"],
        "--galaxy_user_key", keys["GALAXY_USER_KEY"],
        "--paste_test_data_paths",
        "--no_conda_auto_init",
        "--no_conda_auto_install",
        "--test_timeout", str(timeout),
        "--test_output_json", str(job.json),
        "--test_output", str(job.html),
        "--summary", "minimal",
    ]  # fmt: skip
    if is_workflow(job.path):
        # Steps use the suite's bare tool ids, loaded from this repository: nothing to install.
        cmd += ["--no_shed_install"]
    if job.index is not None:
        cmd += ["--test_index", str(job.index)]
    cmd.append(str(job.path))
    return cmd


def planemo_env() -> dict:
    env = dict(os.environ)
    # The repository defaults (.planemo.yml, shared with scripts/lint-tools), else an empty file:
    # never ~/.planemo.yml, and parallel runs do not race on creating it.
    repo_conf = ROOT / ".planemo.yml"
    if not repo_conf.exists():
        repo_conf = ARTIFACTS / "planemo.yml"
        write_text(repo_conf, "{}\n")
    env["PLANEMO_GLOBAL_CONFIG_PATH"] = str(repo_conf)
    return env


def run_job(job: Job, keys: dict, timeout: int, stop: threading.Event, env: dict) -> Job:
    """Run one planemo job; once more if Galaxy refused it before any tool ran (see refused)."""
    if stop.is_set():
        return job
    started = time.time()
    for attempt in (1, 2):
        with job.log.open("a" if attempt > 1 else "w") as logf:
            proc = subprocess.run(planemo_cmd(job, keys, timeout), cwd=str(ROOT), stdout=logf, stderr=subprocess.STDOUT, env=env)
        problem = refused(job)
        if attempt > 1 or not problem:
            break
        log(f"  retry {job.path.name}{f' #{job.index}' if job.index else ''}: Galaxy refused "
            f"the request before any job ran ({problem})")
    job.returncode = proc.returncode
    job.seconds = time.time() - started
    return job


def refused(job: Job) -> str:
    """The problem of a run whose every unsuccessful test failed before Galaxy created a job (a
    request refused under parallel load, e.g. "History not found", seen once in a CI run):
    no tool ran and no output was checked, so running it again tests the same thing."""
    bad = [t.get("data") or {} for t in test_results(job) if status_of(t) != "success"]
    if bad and all(d.get("execution_problem") and not d.get("job") and not d.get("output_problems")
                   for d in bad):
        return " ".join(str(bad[0]["execution_problem"]).split())[:200]
    return ""


def test_results(job: Job) -> list[dict]:
    data = read_json(job.json)
    return data.get("tests", []) if isinstance(data, dict) else []


def status_of(test: dict) -> str:
    return (test.get("data") or {}).get("status", "error")


def problem_of(test: dict) -> str:
    data = test.get("data") or {}
    for key in ("problem_log", "output_problems", "execution_problem"):
        value = data.get(key)
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value if v)
        if value:
            text = str(value)
            if "Traceback (most recent call last)" in text:
                # The exception line says what went wrong, the frames do not.
                lines = [ln for ln in text.splitlines() if ln.strip()]
                head = text.split("Traceback", 1)[0].strip()
                text = f"{head} {lines[-1]}" if lines else text
            return " ".join(text.split())[:400]
    job = data.get("job") or {}
    if job.get("stderr"):
        return " ".join(job["stderr"].split())[-400:]
    return ""


def write_report(tests: list[dict], json_path: Path, env: dict) -> None:
    """A planemo-format JSON report of these test results, and its HTML page next to it."""
    statuses = [status_of(t) for t in tests]
    summary = {
        "num_tests": len(tests),
        "num_failures": statuses.count("failure"),
        "num_errors": sum(1 for s in statuses if s not in ("success", "failure", "skip")),
        "num_skips": statuses.count("skip"),
    }
    write_text(json_path, json.dumps({"version": "0.1", "exit_code": None, "summary": summary, "tests": tests}, indent=2) + "\n")
    html = json_path.with_suffix(".html")
    html.unlink(missing_ok=True)
    out = subprocess.run(
        [planemo_exe(), "test_reports", str(json_path), "--test_output", str(html)],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    if out.returncode != 0 or not html.exists():
        log(f"warning: planemo test_reports {json_path.name} failed: {out.stdout.strip()[-500:]}")


def live_test_runs() -> list[int]:
    """Pids of scripts/test-galaxy runs in progress (registered in .galaxy/test-runs/)."""
    pids = []
    for f in (STATE / "test-runs").glob("*"):
        try:
            pid = int(f.name)
            os.kill(pid, 0)
            pids.append(pid)
        except (ValueError, ProcessLookupError):
            f.unlink(missing_ok=True)
        except PermissionError:
            pids.append(int(f.name))
    return [p for p in pids if p != os.getpid()]


def prune_run_dirs(runs: Path, keep: int = 10) -> None:
    """Drop raw planemo output of finished runs, keeping the newest few."""
    dirs = sorted((d for d in runs.glob("*-*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
    for d in dirs[:-keep]:
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
            continue  # still running
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            pass
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def cmd_test(args: argparse.Namespace) -> int:
    targets = expand_targets(args.paths)
    if not targets:
        die("nothing to test: no tool XML under tools/ and no tested workflow under workflows/")
    # A server that has the current tools loaded.
    if running_pid() is None or not api_version(read_json(STATE_FILE).get("url", url_for(port()))):
        mode = os.environ.get("NS_GALAXY_MODE", "container")
        log(f"Galaxy is not up; starting it (mode {mode}, NS_GALAXY_MODE to change)")
        cmd_up(mode, quiet_if_up=True)
    keys = read_keys()
    if not keys_valid(keys):
        keys = ensure_keys(read_json(STATE_FILE)["url"])
    mode = read_json(STATE_FILE).get("mode")
    # Registered so that `scripts/galaxy down` (or a restart) can warn about runs in progress.
    (STATE / "test-runs").mkdir(parents=True, exist_ok=True)
    me = STATE / "test-runs" / str(os.getpid())
    me.touch()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    try:
        return _run_tests(args, targets, keys, mode)
    finally:
        me.unlink(missing_ok=True)


def _run_tests(args: argparse.Namespace, targets: list[Path], keys: dict, mode: str) -> int:
    tool_targets = [p for p in targets if not is_workflow(p)]
    problems = sync_tools(keys, tool_targets)
    for path, problem in problems.items():
        log(f"warning: {path.relative_to(ROOT)}: {problem}")

    # Raw planemo output of this run in its own folder: runs may overlap (several people, one
    # server); per-file reports and the run's combined report go to artifacts/planemo/.
    runs = ARTIFACTS / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    prune_run_dirs(runs)
    run_dir = runs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_dir.mkdir()
    env = planemo_env()

    names: dict[Path, str] = {}
    for path in targets:
        name = report_name(path)
        names[path] = name if name not in names.values() else f"{name}_{len(names)}"
    counts = {path: count_tests(path) for path in targets}
    jobs: list[Job] = []
    for path in targets:
        n = counts[path]
        if args.split == "test" and n > 1:
            jobs += [Job(path, i, 1, run_dir, names[path]) for i in range(1, n + 1)]
        else:
            jobs.append(Job(path, None, n, run_dir, names[path]))
    # Workflows and big files first keeps the pool busy to the end.
    order = sorted(jobs, key=lambda j: (not is_workflow(j.path), -counts[j.path]))
    log(
        f"{len(targets)} file(s), {sum(counts.values())} test case(s), {len(jobs)} planemo run(s), "
        f"{args.jobs} at a time, against {keys['GALAXY_URL']} ({mode} mode); "
        f"reports in {ARTIFACTS.relative_to(ROOT)}/, raw output in {run_dir.relative_to(ROOT)}/"
    )

    def label(path: Path):
        return path.relative_to(ROOT) if ROOT in path.parents else path

    started = time.time()
    stop = threading.Event()
    remaining = {path: sum(1 for j in jobs if j.path == path) for path in targets}
    report_threads = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_job, job, keys, args.timeout, stop, env) for job in order]
        for fut in concurrent.futures.as_completed(futures):
            job = fut.result()
            remaining[job.path] -= 1
            if job.returncode is None:
                continue
            results = test_results(job)
            bad = [t for t in results if status_of(t) != "success"]
            idx = f" #{job.index}" if job.index else ""
            log(f"  done {label(job.path)}{idx}: {len(results) - len(bad)}/{len(results)} ok in {job.seconds:.0f} s")
            if args.fail_fast and (bad or not results):
                stop.set()
            if remaining[job.path] == 0:
                # All runs of this file are done: its report (planemo JSON + HTML).
                file_tests = [t for j in jobs if j.path == job.path for t in test_results(j)]
                if file_tests:
                    t = threading.Thread(target=write_report, args=(file_tests, ARTIFACTS / f"{names[job.path]}.json", env))
                    t.start()
                    report_threads.append(t)
    wall = time.time() - started

    # Summary: one line per file, then the failures.
    n_pass = n_fail = 0
    all_tests: list[dict] = []
    for path in targets:
        file_jobs = [j for j in jobs if j.path == path]
        results = [t for j in file_jobs for t in test_results(j)]
        all_tests += results
        passed = [t for t in results if status_of(t) == "success"]
        failed = [t for t in results if status_of(t) != "success"]
        missing = [j for j in file_jobs if j.returncode is not None and not test_results(j)]
        ran = [j for j in file_jobs if j.returncode is not None]
        n_pass += len(passed)
        n_fail += len(failed) + len(missing)
        total = len(results) + len(missing)
        slowest = max((j.seconds for j in ran), default=0)
        tag = "PASS" if total and not failed and not missing else "FAIL"
        if not ran:
            tag = "SKIP"
        timing = f"{slowest:.0f} s" if len(ran) == 1 else f"{len(ran)} runs, slowest {slowest:.0f} s"
        print(f"{tag} {label(path)}: {len(passed)}/{total} passed ({timing})")
        for t in failed:
            print(f"     {t.get('id')}: {status_of(t)}: {problem_of(t)}")
        for j in missing:
            print(f"     no results from planemo (exit {j.returncode}), see {j.log.relative_to(ROOT)}")
        if path in problems:
            print(f"     note: {problems[path]}")
    if all_tests:
        write_report(all_tests, ARTIFACTS / "tool_test_output.json", env)
    for t in report_threads:
        t.join()
    per_test = [j.seconds for j in jobs if j.returncode is not None and j.index is not None]
    extra = f", {sum(per_test) / len(per_test):.0f} s per test case (planemo run)" if per_test else ""
    log(f"wall time {wall:.0f} s{extra}; report: {(ARTIFACTS / 'tool_test_output.html').relative_to(ROOT)}")
    print(f"{n_pass} passed, {n_fail} failed")
    return 0 if n_fail == 0 and n_pass > 0 else 1


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/galaxy", description="Local Galaxy server for NeuroStation tool tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Galaxy (or do nothing if it is up with the same mode and config)")
    up.add_argument("--mode", choices=MODES, default="container", help="run tools in the podman image (default) or the package venv")
    sub.add_parser("down", help="stop the Galaxy this harness started")
    sub.add_parser("status", help="print up/down (exit 0 when up)")
    sub.add_parser("url", help="print the server URL")
    sub.add_parser("env", help="print GALAXY_URL, GALAXY_ADMIN_KEY, GALAXY_USER_KEY as shell exports")
    sub.add_parser("sync-tools", help="regenerate tool_conf.xml and wait until Galaxy serves the tools as on disk")
    test = sub.add_parser("test", help="run planemo tests (what scripts/test-galaxy calls)")
    test.add_argument("paths", nargs="*", help="tool XML files, workflows (or their -tests.yml), folders; default: all")
    test.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("NS_TEST_JOBS", "3")), help="planemo runs at a time (default 3)")
    test.add_argument(
        "--split",
        choices=("test", "file"),
        default=os.environ.get("NS_TEST_SPLIT", "test"),
        help="one planemo run per test case (default, best parallelism) or per file",
    )
    test.add_argument("--timeout", type=int, default=int(os.environ.get("NS_TEST_TIMEOUT", "900")), help="seconds per test (default 900)")
    test.add_argument("--fail-fast", action="store_true", help="stop scheduling after the first failure")
    args = parser.parse_args(argv)

    if args.command == "up":
        cmd_up(args.mode)
        return 0
    if args.command == "down":
        cmd_down()
        return 0
    if args.command == "status":
        return cmd_status()
    if args.command == "url":
        cmd_url()
        return 0
    if args.command == "env":
        return cmd_env()
    if args.command == "sync-tools":
        return cmd_sync_tools()
    if args.command == "test":
        return cmd_test(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
