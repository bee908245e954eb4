"""deploy/: the Dockerfile, docker-compose.yml, the Kubernetes manifests and the systemd units run
real `trackrecord` commands, with settings the code reads and the secrets it needs (issue 11).

The files are parsed, not run: no Docker daemon or cluster is needed. What they name is checked
against the code itself (the click commands, the Flask routes, the variables the packages read,
the worker's time bounds), so a renamed command, route or variable breaks here first.
`kubectl kustomize` renders the manifests when kubectl is installed.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from trackrecord.config import Config, Settings, load_config

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PACKAGES = ("trackrecord", "ledger", "reports", "connectors", "workers", "webhook_app", "cli")
TRACKRECORD_SERVICES = {"migrate", "web", "worker", "scheduler"}
# What every trackrecord process needs to find its stores and its configuration.
PROCESS_SETTINGS = {"DATABASE_URL", "REDIS_URL", "TRACKRECORD_CONFIG"}
# The web app's own secrets: the global webhook secrets, the admin token, and the key that
# seals the pages' cookie (which several web processes must share).
WEB_SECRETS = {"GITHUB_WEBHOOK_SECRET", "JIRA_WEBHOOK_SECRET", "TRACKRECORD_ADMIN_TOKEN"}
SHARED_KEY = "TRACKRECORD_SECRET_KEY"
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)+").fullmatch
# Variables of Python and pip themselves, which the Dockerfile may set.
PYTHON_ENV = {"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
              "PIP_DISABLE_PIP_VERSION_CHECK"}  # fmt: skip


# --- what the code offers ---------------------------------------------------------------------


@functools.cache
def variables_read() -> frozenset[str]:
    """Every NAME_LIKE_THIS string constant of the packages: the environment variables they
    read (each is named once, as a constant, where it is read) and a few harmless others."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                value = getattr(node, "value", None)
                if isinstance(node, ast.Constant) and isinstance(value, str) and ENV_NAME(value):
                    names.add(value)
    return frozenset(names)


def named_by(config: Config) -> set[str]:
    """The variables a configuration file names: clients' `token_env`, sources' `secret_env`."""
    names = {c.token_env for c in config.clients if c.token_env}
    return names | {s.secret_env for s in config.sources() if s.secret_env}


def run_command(argv: list[str]) -> None:
    """Fails unless argv is a `trackrecord` command with options its click command accepts."""
    from cli.main import main

    assert argv[0] == "trackrecord", f"{argv}: not the trackrecord command"
    command, args, path = main, list(argv[1:]), ["trackrecord"]
    while isinstance(command, click.Group):
        assert args, f"{argv}: names a group, not a command"
        assert args[0] in command.commands, f"{argv}: {args[0]!r} is not a command of {path}"
        path.append(args[0])
        command = command.commands[args.pop(0)]
    try:  # parses and checks the options (names, types, choices) without running anything
        command.make_context(" ".join(path), args)
    except click.UsageError as exc:
        pytest.fail(f"{argv}: {exc.format_message()}")


def routes() -> set[str]:
    from webhook_app import create_app

    settings = Settings(database_url="sqlite://", redis_url="redis://127.0.0.1:1/0",
                        config=Config(path=None))  # fmt: skip
    return {rule.rule for rule in create_app(settings).url_map.iter_rules()}


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory) -> set[str]:
    # The pages' key is written under XDG_DATA_HOME when not given: keep it off the home folder.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRACKRECORD_SECRET_KEY", "test-only")
        mp.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
        return routes()


def worker_stop_bound() -> float:
    """How long a worker may need after SIGTERM: it gives the job in hand up STOP_GRACE_SECONDS
    after the signal (workers.runner), unless it waits on SQLite's write lock, which nothing
    interrupts before its busy timeout."""
    from trackrecord.db import SQLITE_BUSY_TIMEOUT_MS
    from workers.runner import STOP_GRACE_SECONDS

    return STOP_GRACE_SECONDS + SQLITE_BUSY_TIMEOUT_MS / 1000


def seconds(value) -> float:
    """A compose duration ("330s", "1m30s") or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(n) * scale[u] for n, u in parts)


def env_file(path: Path) -> dict[str, str]:
    """NAME=value lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.split("#", 1)[0].strip()
    return pairs


def mount(volume: str) -> tuple[str, str]:
    """(source, target) of a compose volume "SOURCE:TARGET[:MODE]"; SOURCE may hold ${A:-b}."""
    rest = re.sub(r":(ro|rw)$", "", volume)
    source, _, target = rest.rpartition(":")
    return source, target


# --- the Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines)
        if word and not word.startswith("#")
    ]


def test_the_image_runs_a_real_command_as_a_user_that_is_not_root():
    steps = dockerfile()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    cmds = [json.loads(args) for name, args in steps if name == "CMD"]
    assert cmds, "no CMD"
    assert not any(name == "ENTRYPOINT" for name, _ in steps)
    run_command(cmds[-1])
    # serve's default host is 127.0.0.1, which nothing outside the container reaches.
    assert cmds[-1][:2] == ["trackrecord", "serve"] and "0.0.0.0" in cmds[-1]
    users = [args for name, args in steps if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    # WeasyPrint loads Pango at import: without it every process fails at the first report.
    installs = " ".join(args for name, args in steps if name == "RUN")
    assert "libpango-1.0-0" in installs and "libpangoft2-1.0-0" in installs


def test_the_image_sets_only_variables_that_are_read():
    names = set()
    for name, args in dockerfile():
        if name == "ENV":
            names |= {pair.split("=", 1)[0] for pair in shlex.split(args)}
    assert names - variables_read() - PYTHON_ENV == set()


def test_the_image_holds_every_package_the_project_installs():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {args.split()[0] for name, args in dockerfile() if name == "COPY"}
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    # The build context is an allow-list: what the image copies must be let through it.
    allowed = {
        line[1:].strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert copied <= allowed, f"kept out by .dockerignore: {copied - allowed}"


# --- docker-compose.yml -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))


def test_compose_has_the_six_services_and_runs_real_commands(compose):
    services = compose["services"]
    assert set(services) == TRACKRECORD_SERVICES | {"postgres", "redis"}
    for name in TRACKRECORD_SERVICES:
        run_command(services[name]["command"])
    assert services["migrate"]["command"] == ["trackrecord", "db", "upgrade"]
    assert services["web"]["command"][:2] == ["trackrecord", "serve"]
    assert "0.0.0.0" in services["web"]["command"]
    assert services["worker"]["command"] == ["trackrecord", "worker"]
    assert services["scheduler"]["command"] == ["trackrecord", "scheduler"]


def test_compose_migrates_before_anything_else_starts(compose):
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["restart"] == "no"  # a one-shot: restarting it would never complete
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker", "scheduler"):
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name


def test_compose_scales_workers_and_keeps_one_scheduler(compose):
    services = compose["services"]
    worker = services["worker"]
    # `--scale worker=N` refuses a fixed container name or a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert seconds(worker["stop_grace_period"]) >= worker_stop_bound()
    scheduler = services["scheduler"]
    assert scheduler.get("deploy", {}).get("replicas", 1) == 1
    assert scheduler.get("scale", 1) == 1


def test_compose_health_checks_hit_routes_the_app_has(compose, app_routes):
    services = compose["services"]
    check = " ".join(services["web"]["healthcheck"]["test"])
    paths = re.findall(r"http://[^/]+(/[a-z]+)", check)
    assert paths and set(paths) <= {"/healthz", "/readyz"} and set(paths) <= app_routes
    postgres, redis = services["postgres"], services["redis"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    # Both keep their data in named volumes, which outlive the containers.
    for service, data in ((postgres, "/var/lib/postgresql/data"), (redis, "/data")):
        volumes = dict(reversed(mount(v)) for v in service["volumes"])
        assert volumes[data] in compose["volumes"]


def test_compose_gives_each_process_its_settings_and_secrets(compose):
    known = variables_read()
    example = env_file(DEPLOY / "trackrecord.env.example")
    for name in TRACKRECORD_SERVICES:
        service = compose["services"][name]
        # The operator's copy of the example is what compose reads.
        assert service["env_file"] == "trackrecord.env", name
        environment = service["environment"]
        assert set(environment) <= known, f"{name}: {set(environment) - known} are read by nothing"
        mounts = dict(reversed(mount(v)) for v in service["volumes"])
        target = environment["TRACKRECORD_CONFIG"]
        assert target in mounts, f"{name}: nothing is mounted at {target}"
        # The default file mounted ("${VAR:-default}") exists and is a valid configuration.
        default = re.fullmatch(r"\$\{\w+:-(.+)\}", mounts[target]).group(1)
        config = load_config(DEPLOY / default)
        provided = set(environment) | set(example)
        # The web app checks webhooks and API tokens: it needs every variable the file names.
        needed = PROCESS_SETTINGS | (WEB_SECRETS | named_by(config) if name == "web" else set())
        assert needed <= provided, f"{name}: not in the env example: {needed - provided}"
    assert set(example) <= known | named_by(config), "the env example sets unknown variables"


def test_compose_documents_its_own_variables(compose):
    # Variables compose itself reads (${NAME...}) are no container's: docs/operations.md says
    # what each is for.
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    names = set(re.findall(r"\$\{(\w+)", text))
    assert names, "no interpolated variable found"
    assert {n for n in names if f"`{n}`" not in guide} == set()


# --- Kubernetes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def manifests(kustomization) -> dict[tuple[str, str], dict]:
    """The kustomization's resources by (kind, name)."""
    docs = {}
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8")):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


def generated(kustomization) -> dict[str, dict[str, str]]:
    """The generated ConfigMaps: name -> {key: value} (a file's key is its name)."""
    maps = {}
    for gen in kustomization["configMapGenerator"]:
        data = dict(literal.split("=", 1) for literal in gen.get("literals", []))
        for file in gen.get("files", []):
            key, _, path = file.rpartition("=")
            data[key or path] = (K8S / path).read_text(encoding="utf-8")
        maps[gen["name"]] = data
    return maps


def pod_specs(manifests) -> dict[str, dict]:
    return {
        name: doc["spec"]["template"]["spec"]
        for (kind, name), doc in manifests.items()
        if kind in ("Deployment", "Job")
    }


@pytest.fixture(scope="module")
def secret() -> dict:
    return yaml.safe_load((K8S / "secret.example.yaml").read_text(encoding="utf-8"))


def test_k8s_has_every_process_a_job_and_no_namespace(manifests):
    kinds = {(kind, name) for kind, name in manifests}
    assert kinds >= {
        ("Deployment", "trackrecord-web"),
        ("Deployment", "trackrecord-worker"),
        ("Deployment", "trackrecord-scheduler"),
        ("Service", "trackrecord-web"),
        ("Job", "trackrecord-migrate"),
    }
    # Namespace-agnostic: `kubectl apply -k deploy/k8s -n NAME` puts it anywhere.
    assert all("namespace" not in doc["metadata"] for doc in manifests.values())
    for name, spec in pod_specs(manifests).items():
        for container in spec["containers"]:
            run_command(container["command"])
        assert spec["securityContext"]["runAsNonRoot"] is True, name
    job = manifests[("Job", "trackrecord-migrate")]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["trackrecord", "db", "upgrade"]
    assert job["restartPolicy"] in ("Never", "OnFailure")


def test_k8s_web_rolls_without_a_gap_and_probes_real_routes(manifests, app_routes):
    web = manifests[("Deployment", "trackrecord-web")]
    assert web["spec"]["replicas"] >= 2
    strategy = web["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = web["spec"]["template"]["spec"]["containers"]
    probes = {k: v["httpGet"] for k, v in container.items() if k.endswith("Probe")}
    assert probes["livenessProbe"]["path"] == "/healthz"
    # A pod joins the Service only once the database and Redis answer.
    assert probes["startupProbe"]["path"] == "/readyz"
    assert {p["path"] for p in probes.values()} <= app_routes
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert all(p["port"] in ports for p in probes.values())
    assert str(ports["http"]) in container["command"]
    service = manifests[("Service", "trackrecord-web")]
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)


def test_k8s_workers_roll_and_finish_their_job_one_scheduler_at_a_time(manifests):
    worker = manifests[("Deployment", "trackrecord-worker")]["spec"]
    assert worker["replicas"] >= 2 and worker["strategy"]["type"] == "RollingUpdate"
    assert worker["template"]["spec"]["terminationGracePeriodSeconds"] >= worker_stop_bound()
    scheduler = manifests[("Deployment", "trackrecord-scheduler")]["spec"]
    assert scheduler["replicas"] == 1
    assert scheduler["strategy"] == {"type": "Recreate"}


def test_k8s_config_is_mounted_where_trackrecord_config_points(manifests, kustomization):
    maps = generated(kustomization)
    for name, spec in pod_specs(manifests).items():
        (container,) = spec["containers"]
        refs = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
        env = {k: v for ref in refs for k, v in maps[ref].items()}
        path = Path(env["TRACKRECORD_CONFIG"])
        volumes = {v["name"]: v for v in spec["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
        config_map = volumes[mount["name"]]["configMap"]["name"]
        assert path.name in maps[config_map], f"{name}: {path.name} is not in {config_map}"
    load_config(K8S / "trackrecord.toml")  # valid, or this raises with the key at fault


def test_k8s_secret_provides_what_the_processes_need_and_holds_no_value(
    manifests, kustomization, secret
):
    # Never applied by the kustomization: an apply must not overwrite real credentials.
    assert "secret.example.yaml" not in kustomization["resources"]
    assert secret["kind"] == "Secret"
    values = secret["stringData"]
    for key, value in values.items():
        assert value == "" or "CHANGE-ME" in value or "example" in value, f"{key}: a real value?"
    known = variables_read()
    maps = generated(kustomization)
    config = load_config(K8S / "trackrecord.toml")
    for name, spec in pod_specs(manifests).items():
        (container,) = spec["containers"]
        provided = set()
        for source in container["envFrom"]:
            if "secretRef" in source:
                assert source["secretRef"]["name"] == secret["metadata"]["name"], name
                provided |= set(values)
            else:
                provided |= set(maps[source["configMapRef"]["name"]])
        provided |= {e["name"] for e in container.get("env", [])}
        unknown = provided - known - named_by(config)
        assert not unknown, f"{name}: {unknown} are read by nothing"
        needed = set(PROCESS_SETTINGS)
        if name.endswith("-web"):  # two web pods must seal the pages' cookies alike
            needed |= WEB_SECRETS | named_by(config) | {SHARED_KEY}
        assert needed <= provided, f"{name}: missing {needed - provided}"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_k8s_kustomization_renders():
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    docs = list(yaml.safe_load_all(out.stdout))
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    # Every reference to a generated ConfigMap points at its hashed name.
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            spec = doc["spec"]["template"]["spec"]
            refs = {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
            refs |= {
                e["configMapRef"]["name"]
                for c in spec["containers"]
                for e in c["envFrom"]
                if "configMapRef" in e
            }
            assert refs <= config_maps, doc["metadata"]["name"]
            images = {c["image"] for c in spec["containers"]}
            assert all(i.startswith("registry.example.com/trackrecord:") for i in images)
    # docs/operations.md migrates first with `-l trackrecord/step=migrate`: that must pick the
    # Job and every ConfigMap it mounts, and no Deployment.
    picked = {
        (d["kind"], d["metadata"]["name"].split("-")[1])
        for d in docs
        if d["metadata"].get("labels", {}).get("trackrecord/step") == "migrate"
    }
    assert picked == {("Job", "migrate"), ("ConfigMap", "config"), ("ConfigMap", "env")}


# --- systemd ----------------------------------------------------------------------------------


def test_systemd_units_run_real_commands():
    for unit in sorted((DEPLOY / "systemd").glob("*.service")):
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith(("ExecStart=", "ExecStartPre=")):
                argv = shlex.split(line.split("=", 1)[1])
                run_command(["trackrecord", *argv[1:]])
                assert argv[0].endswith("/trackrecord"), unit.name


def test_systemd_units_give_each_process_the_time_its_pod_gets_to_stop(manifests):
    # The same bound on both: a unit that waited longer only delays a restart; shorter, and
    # systemd would SIGKILL a worker still finishing its transaction.
    stops = {}
    for name in ("web", "worker", "scheduler"):
        unit = (DEPLOY / "systemd" / f"trackrecord-{name}.service").read_text(encoding="utf-8")
        stops[name] = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
        pod = manifests[("Deployment", f"trackrecord-{name}")]["spec"]["template"]["spec"]
        assert stops[name] == pod["terminationGracePeriodSeconds"], name
    assert stops["worker"] >= worker_stop_bound()
