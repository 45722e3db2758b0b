"""The deployment files agree with the code they deploy.

There is no Docker engine (nor a cluster) on the development machines, so docker-compose.yml,
the Dockerfile, .dockerignore, deploy/k8s and deploy/otel are never run here. These
tests read them and hold them against the services' settings classes, the topic module and
the local stack instead: a renamed setting, a new topic or a moved port fails here rather than
in a deployment. Pure and fast: nothing is started, nothing is fetched.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from microcred_shared.contract import topics
from microcred_shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S = ROOT / "deploy" / "k8s"
OTEL = ROOT / "deploy" / "otel"
SERVICES = ("assessment", "issuance", "registry", "notify")
PYTHON_IMAGE = "python:3.11-slim"
PARTITIONS = 8  # what deploy/local creates; docker-compose and k8s must create the same

# Names whose value is a secret: never a literal in a committed file.
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET)")
# A Compose reference with no default: ${NAME}, ${NAME?msg} or ${NAME:?msg}.
COMPOSE_REF = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?\?[^}]*)?\}$")
# The SDK's OTEL_* variables may be set; OTEL_SERVICE_NAME is not, since the service sets
# service.name itself (docs/architecture.md) and the resource it builds overrides that variable.
OTEL_IGNORED = {"OTEL_SERVICE_NAME"}


# --- loading ------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_UniqueKeyLoader) if doc]


@cache
def compose() -> dict[str, Any]:
    (doc,) = load_all(COMPOSE_FILE)
    return doc


def compose_service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def compose_env(name: str) -> dict[str, str]:
    env = compose_service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@cache
def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for resource in kustomization()["resources"]:
        for doc in load_all(K8S / resource):
            docs.append(doc)
    return docs


@cache
def kustomization() -> dict[str, Any]:
    (doc,) = load_all(K8S / "kustomization.yaml")
    return doc


def k8s_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_docs() if d.get("kind") == kind}


def settings_class(service: str) -> type[ServiceSettings]:
    return importlib.import_module(f"microcred_{service}.settings").Settings


def field_env_names(field: Any, field_name: str) -> set[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return {choice for choice in alias.choices if isinstance(choice, str)}
    if isinstance(alias, str):
        return {alias}
    return {field_name.upper()}


def scoped_names(service: str) -> set[str]:
    prefix = f"MICROCRED_{service.upper()}_"
    return {prefix + "DATABASE_URL", prefix + "HTTP_PORT"}


def read_names(service: str) -> set[str]:
    """The environment variables the service's settings read, by their documented names.

    Fields without an alias are left out on purpose: pydantic-settings would read them under
    their bare field names, which are not part of the settings contract.
    """
    cls = settings_class(service)
    names = set(scoped_names(service))
    for field in cls.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {choice for choice in alias.choices if isinstance(choice, str)}
        elif isinstance(alias, str):
            names.add(alias)
    return names


def is_read(service: str, name: str) -> bool:
    if name.startswith("OTEL_"):
        return name not in OTEL_IGNORED
    return name in read_names(service)


def required_groups(service: str) -> list[set[str]]:
    """Each group: the names of one setting the service cannot start without (any one will do)."""
    cls = settings_class(service)
    groups = [field_env_names(f, n) for n, f in cls.model_fields.items() if f.is_required()]
    # DATABASE_URL has a None default, but ServiceSettings.database_url raises without it or
    # the service-scoped override (docs/architecture.md: required).
    groups.append({"DATABASE_URL", f"MICROCRED_{service.upper()}_DATABASE_URL"})
    return groups


def port_var(service: str) -> str:
    return f"MICROCRED_{service.upper()}_HTTP_PORT"


def consumer_services() -> list[str]:
    """Services whose code subscribes to a topic (rt.subscribe / r.subscribe)."""
    found = []
    for service in SERVICES:
        src = ROOT / "services" / service / "src"
        if any(".subscribe(" in p.read_text() for p in src.rglob("*.py")):
            found.append(service)
    return found


# --- Dockerfiles -----------------------------------------------------------------------------


DOCKERFILE = ROOT / "Dockerfile"
Stage = list[tuple[str, str]]
_VAR = re.compile(r"\$\{?(\w+)\}?")


def dockerfile(service: str) -> Path:
    """One Dockerfile for every service; `--build-arg SERVICE=<service>` picks which."""
    return DOCKERFILE


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        buf += line
        instr, _, args = buf.partition(" ")
        out.append((instr.upper(), args.strip()))
        buf = ""
    return out


def _substitute(text: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _parse(path: Path, build_args: dict[str, str]) -> tuple[dict[str, str], list[Stage],
                                                             dict[str, int]]:
    """(global ARG values, every stage's instructions with ARGs substituted, stage index by
    name). ARGs are substituted everywhere but in CMD, HEALTHCHECK and ENTRYPOINT, whose
    exec form Docker leaves alone (in RUN the shell sees the same values as build args)."""
    args: dict[str, str] = {}
    result: list[Stage] = []
    names: dict[str, int] = {}
    scope: dict[str, str] = {}
    for instr, rest in instructions(path):
        if instr == "ARG":
            key, _, value = rest.partition("=")
            value = build_args.get(key, value or (args.get(key, "") if result else value))
            (scope if result else args)[key] = value
            if not result:
                continue
        if instr == "FROM":
            scope = {}
            rest = _substitute(rest, args)
            parts = rest.split()
            if len(parts) == 3 and parts[1].upper() == "AS":
                names[parts[2]] = len(result)
            result.append([])
        elif instr not in ("CMD", "HEALTHCHECK", "ENTRYPOINT"):
            rest = _substitute(rest, scope)
        if result:
            result[-1].append((instr, rest))
    return args, result, names


def stages(path: Path, service: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG values, the stages that make `service`'s image), as with
    `--build-arg SERVICE=<service>`: the build stages the image copies from, then the image.
    A stage FROM an earlier stage starts with that stage's instructions, as Docker's image
    inherits its ENV, USER, EXPOSE, HEALTHCHECK and CMD; its FROM is the base image."""
    args, parsed, names = _parse(path, {"SERVICE": service})

    def effective(index: int) -> Stage:
        stage = parsed[index]
        base = stage[0][1].split()[0]
        if base in names:
            return effective(names[base]) + stage[1:]
        return stage

    image = effective(len(parsed) - 1)
    used: list[Stage] = []
    for instr, rest in image:
        source = re.search(r"--from=(\S+)", rest) if instr in ("COPY", "ADD") else None
        if source and source.group(1) in names:
            used.append(effective(names[source.group(1)]))
    return args, [*used, image]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for instr, rest in stage:
        if instr == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def exposed_ports(stage: list[tuple[str, str]]) -> list[int]:
    return [int(p.split("/")[0]) for i, rest in stage if i == "EXPOSE" for p in rest.split()]


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def in_build_context(rel: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return not excluded


def files_under(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for p in path.rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts:
            yield p


# --- compose helpers -----------------------------------------------------------------------


def published_ports(service: str) -> list[tuple[int | None, int]]:
    """(host port or None, container port) for each `ports` entry."""
    out = []
    for entry in compose_service(service).get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((int(published) if published else None, int(entry["target"])))
            continue
        fields = str(entry).split("/")[0].split(":")
        container = int(fields[-1])
        out.append((int(fields[-2]) if len(fields) > 1 else None, container))
    return out


def healthcheck_text(service: str) -> str:
    test = compose_service(service).get("healthcheck", {}).get("test", "")
    return " ".join(test) if isinstance(test, list) else str(test)


COMPOSE_DIR = ROOT / "deploy" / "compose"
KAFKA_AUDIT = ROOT / "deploy" / "kafka-audit"


def load_script(path: Path) -> Any:
    """A deployment script (deploy/compose, deploy/k8s) imported as a module."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_kafka_properties() -> dict[str, str]:
    """The broker's server.properties, as Compose hands it to the broker (configs content,
    `$$` being Compose's escape for `$`)."""
    refs = [r for r in compose_service("kafka").get("configs", [])
            if r["target"] == START_BROKER_CONFIG]
    assert refs, f"the compose broker gets no config at {START_BROKER_CONFIG}"
    text = compose()["configs"][refs[0]["source"]]["content"].replace("$$", "$")
    return dict(line.split("=", 1) for line in text.splitlines()
                if "=" in line and not line.lstrip().startswith("#"))


def listeners(props: dict[str, str], key: str = "listeners") -> dict[str, tuple[str, int]]:
    """{listener name: (host, port)} of a listeners/advertised.listeners value."""
    out = {}
    for item in filter(None, props.get(key, "").split(",")):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name.upper()] = (host, int(port))
    return out


def protocols(props: dict[str, str]) -> dict[str, str]:
    pairs = (item.split(":") for item in props["listener.security.protocol.map"].split(","))
    return {name.upper(): protocol for name, protocol in pairs}


def compose_mounts(service: str) -> dict[str, str]:
    """{container path: volume or host path} of a compose service's volumes."""
    out = {}
    for entry in compose_service(service).get("volumes", []):
        source, target = str(entry).split(":")[:2]
        out[target] = source
    return out


def start_broker_script() -> str:
    return (KAFKA_AUDIT / "docker" / "start-broker.sh").read_text()


def _script_default(variable: str) -> str:
    found = re.search(r"\$\{" + variable + r":-([^}]+)\}", start_broker_script())
    assert found, f"start-broker.sh has no default for {variable}"
    return found.group(1)


START_BROKER_CONFIG = _script_default("MICROCRED_KAFKA_CONFIG")


def split_url_password(url: str) -> tuple[str, str | None]:
    """(url without password, password) of scheme://user:password@host/db."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url, None
    user, colon, password = userinfo.partition(":")
    return f"{scheme}{sep}{user}@{hostpart}", password if colon else None


# --- YAML sanity ---------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    found = [COMPOSE_FILE]
    for folder in (K8S, OTEL):
        found += sorted([*folder.rglob("*.yaml"), *folder.rglob("*.yml")])
    return found


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_deployment_yaml_file_parses_without_duplicate_keys(path: Path) -> None:
    try:
        docs = load_all(path)
    except yaml.YAMLError as exc:
        pytest.fail(f"{path.relative_to(ROOT)} is not valid YAML: {exc}")
    assert docs, f"{path.relative_to(ROOT)} holds no YAML document"
    assert "\t" not in path.read_text(), f"{path.relative_to(ROOT)} contains a tab"


# --- (a) settings names ------------------------------------------------------------------


def test_the_service_scoped_names_are_the_ones_the_settings_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # read_names() adds the MICROCRED_<SERVICE>_ names by pattern: prove the pattern.
    monkeypatch.setenv("MICROCRED_KEY_ENCRYPTION_KEY", "A" * 43)  # issuance needs one
    monkeypatch.setenv("MICROCRED_NOTIFY_SECRET_KEY", "A" * 43)  # and notify one
    for service in SERVICES:
        monkeypatch.setenv(port_var(service), "54321")
        monkeypatch.setenv(f"MICROCRED_{service.upper()}_DATABASE_URL", "postgresql://u@h/x")
        settings = settings_class(service)()
        assert settings.http_port == 54321, f"{service} does not read {port_var(service)}"
        assert settings.own_database_url == "postgresql://u@h/x", (
            f"{service} does not read MICROCRED_{service.upper()}_DATABASE_URL"
        )


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_compose_service_sets_is_one_that_service_reads(service: str) -> None:
    env = compose_env(service)
    unread = sorted(name for name in env if not is_read(service, name))
    assert not unread, (
        f"docker-compose.yml sets {unread} for {service}, but microcred_{service}.settings "
        f"reads none of them (it reads {sorted(read_names(service))} and OTEL_*)"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_every_required_setting_of_a_service_is_set_in_compose(service: str) -> None:
    env = compose_env(service)
    missing = [sorted(group) for group in required_groups(service) if not group & env.keys()]
    assert not missing, (
        f"{service} cannot start without {missing}, and docker-compose.yml sets none of them"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_compose_builds_each_service_from_the_repo_root_with_the_one_dockerfile(
    service: str,
) -> None:
    build = compose_service(service).get("build")
    assert isinstance(build, dict), f"compose service {service} has no build section"
    assert (COMPOSE_FILE.parent / build.get("context", ".")).resolve() == ROOT, (
        f"compose builds {service} from {build.get('context')!r}, not the repository root "
        "(the images need shared/ and deploy/seed)"
    )
    assert (ROOT / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE, (
        f"compose builds {service} with {build.get('dockerfile')!r}, not the Dockerfile"
    )
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(a.split("=", 1) for a in args)
    assert args.get("SERVICE") == service, (
        f"compose builds {service} with build arg SERVICE={args.get('SERVICE')!r}"
    )
    assert compose_service(service).get("image", "").split(":")[0] == f"microcred-{service}"


def test_the_dockerfile_builds_only_the_services_there_are() -> None:
    _, parsed, names = _parse(DOCKERFILE, {})
    final_from = [rest for instr, rest in instructions(DOCKERFILE) if instr == "FROM"][-1]
    assert final_from == "${SERVICE}", (
        f"the Dockerfile's image stage is FROM {final_from}, not the stage SERVICE names"
    )
    assert set(SERVICES) <= names.keys(), (
        f"the Dockerfile has no stage for {sorted(set(SERVICES) - names.keys())}"
    )
    (check,) = [rest for instr, rest in parsed[names["build"]] if "SERVICE" in rest
                and instr == "RUN" and "exit 1" in rest]
    assert all(f"{s}|" in check or f"|{s})" in check for s in SERVICES), (
        f"the build stage's check of SERVICE does not list every service: {check}"
    )
    assert not list((ROOT / "services").glob("*/Dockerfile")), (
        "a service has its own Dockerfile again: the one at the repository root builds all"
    )


def test_all_services_agree_on_the_public_base_url() -> None:
    values = {s: compose_env(s).get("MICROCRED_PUBLIC_BASE_URL") for s in SERVICES}
    assert len(set(values.values())) == 1, (
        "MICROCRED_PUBLIC_BASE_URL differs between the compose services (it is signed into "
        f"issuer ids and status list URLs, so all must agree): {values}"
    )


def test_the_services_reach_kafka_postgres_traces_and_mail_at_compose_services() -> None:
    services = compose()["services"]
    for service in SERVICES:
        env = compose_env(service)
        kafka_host = env["KAFKA_BOOTSTRAP_SERVERS"].split(",")[0].rsplit(":", 1)
        assert kafka_host[0] in services, f"{service}'s Kafka host {kafka_host[0]} is no service"
        advertised = compose_kafka_properties()["advertised.listeners"]
        assert "://" + env["KAFKA_BOOTSTRAP_SERVERS"] in advertised, (
            f"{service} uses {env['KAFKA_BOOTSTRAP_SERVERS']}, which the broker does not "
            f"advertise ({advertised})"
        )
        db = split_url_password(env["DATABASE_URL"])[0]
        assert "@postgres:5432/postgres" in db, (
            f"{service}'s DATABASE_URL should point at the postgres service's `postgres` "
            f"database, it is {db}"
        )
        otlp = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        host, _, port = otlp.removeprefix("http://").partition(":")
        assert host in services, f"{service} exports traces to {otlp}: no such compose service"
        (collector,) = load_all(OTEL / "collector.yaml")
        http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
        assert http.endswith(":" + port.rstrip("/")), (
            f"{service} exports OTLP/HTTP to port {port}, the collector listens on {http}"
        )
    notify = compose_env("notify")
    smtp_host = notify.get("MICROCRED_SMTP_HOST")
    assert smtp_host in services and "mailpit" in services[smtp_host]["image"], (
        f"notify's MICROCRED_SMTP_HOST is {smtp_host!r}, not the mail catcher service"
    )
    assert notify.get("MICROCRED_SMTP_PORT") == "1025", (
        f"notify's MICROCRED_SMTP_PORT is {notify.get('MICROCRED_SMTP_PORT')}, Mailpit's SMTP "
        "port is 1025 (8025, the settings default, is Mailpit's web UI)"
    )


def test_the_services_wait_for_kafka_topics_and_a_healthy_database() -> None:
    for service in SERVICES:
        depends = compose_service(service).get("depends_on", {})
        wanted = {"kafka-init": "service_completed_successfully", "postgres": "service_healthy"}
        if service == "notify":
            wanted["mailpit"] = "service_healthy"
        for dep, condition in wanted.items():
            got = depends.get(dep, {}).get("condition") if isinstance(depends, dict) else None
            assert got == condition, (
                f"compose service {service} should depend on {dep} with {condition}, has {got}"
            )
        assert compose_service(service).get("healthcheck"), f"{service} has no healthcheck"
    kafka_init = compose_service("kafka-init")["depends_on"]
    assert kafka_init["kafka"]["condition"] == "service_healthy", (
        "kafka-init must wait for a healthy broker"
    )
    for infra in ("kafka", "postgres"):
        assert compose_service(infra).get("healthcheck"), f"{infra} has no healthcheck"


# --- (b) ports -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_listens_on_one_port_in_compose_the_dockerfile_and_k8s(service: str) -> None:
    var = port_var(service)
    env_port = compose_env(service).get(var)
    assert env_port, f"docker-compose.yml does not set {var} for {service}"
    seen = {f"compose {var}": int(env_port)}
    for n, (host, container) in enumerate(published_ports(service)):
        seen[f"compose ports[{n}] container side"] = container
        if host is not None:
            seen[f"compose ports[{n}] host side"] = host
    assert published_ports(service), f"compose service {service} publishes no port"
    for n, port in enumerate(compose_service(service).get("expose", [])):
        seen[f"compose expose[{n}]"] = int(str(port).split("/")[0])
    health = re.findall(r"127\.0\.0\.1:(\d+)/healthz", healthcheck_text(service))
    assert health, f"compose healthcheck of {service} does not GET 127.0.0.1:PORT/healthz"
    seen["compose healthcheck"] = int(health[0])

    _, image_stages = stages(dockerfile(service), service)
    final = image_stages[-1]
    for port in exposed_ports(final):
        seen["Dockerfile EXPOSE"] = port
    if var in env_of(final):
        seen[f"Dockerfile ENV {var}"] = int(env_of(final)[var])

    deployment = k8s_objects("Deployment")[service]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for p in container.get("ports", []):
        seen[f"k8s containerPort {p.get('name')}"] = p["containerPort"]
    k8s_env = {e["name"]: e.get("value") for e in container.get("env", [])}
    if var in k8s_env:
        seen[f"k8s env {var}"] = int(k8s_env[var])

    assert len(set(seen.values())) == 1, f"{service}'s HTTP port disagrees: {seen}"
    assert "Dockerfile EXPOSE" in seen, f"the Dockerfile exposes no port for {service}"
    assert f"k8s env {var}" in seen, f"the k8s Deployment of {service} does not set {var}"


# --- (c) kafka-init: topics, the services' SCRAM users and ACLs ------------------------------


class _FakeAdmin:
    """Stands in for a started AIOKafkaAdminClient while kafka_init.init runs."""

    def __init__(self, existing: set[str]) -> None:
        self.existing = existing
        self.created: list[Any] = []
        self.scram: list[tuple[Any, ...]] = []
        self.acls: list[tuple[int, str, int, str, int]] = []

    async def list_topics(self) -> list[str]:
        return sorted(self.existing)

    async def create_topics(self, new_topics: list[Any], **_: Any) -> Any:
        self.created.extend(new_topics)
        return SimpleNamespace(topic_errors=[(t.name, 0, None) for t in new_topics])

    async def _send_request(self, request: Any) -> Any:
        if hasattr(request, "_upsertions"):  # AlterUserScramCredentials
            self.scram.extend(request._upsertions)
            return SimpleNamespace(results=[(u[0], 0, None, {}) for u in request._upsertions])
        self.acls.append((request._resource_type, request._resource_name,
                          request._resource_pattern_type_filter, request._principal,
                          request._operation))
        return SimpleNamespace(creation_responses=[(0, None)])


def kafka_init() -> Any:
    return load_script(COMPOSE_DIR / "kafka_init.py")


def run_kafka_init(existing: set[str]) -> _FakeAdmin:
    import asyncio

    module = kafka_init()
    env = compose_env("kafka-init")
    admin = _FakeAdmin(existing)
    asyncio.run(module.init(admin, module.service_passwords(env)))
    return admin


def test_kafka_init_runs_the_script_compose_mounts_as_the_brokers_super_user() -> None:
    init = compose_service("kafka-init")
    command = init["command"]
    mounts = compose_mounts("kafka-init")
    script = command[-1]
    folder = str(Path(script).parent)
    assert command[0] == "python" and mounts.get(folder) == "./deploy/compose", (
        f"kafka-init runs {command}, not a script of deploy/compose mounted at {folder}"
    )
    assert (ROOT / "deploy" / "compose" / Path(script).name).is_file()
    env = compose_env("kafka-init")
    assert env["MICROCRED_KAFKA_SASL_USERNAME"] == "admin"
    assert "User:admin" in compose_kafka_properties()["super.users"].split(";")
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == compose_env("assessment")["KAFKA_BOOTSTRAP_SERVERS"]
    assert env["MICROCRED_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_kafka_init_creates_exactly_the_topics_of_the_topic_module() -> None:
    created = run_kafka_init(existing=set()).created
    names = [t.name for t in created]
    assert sorted(names) == sorted(topics.all_topics()), (
        "kafka-init creates "
        f"{sorted(set(names) - set(topics.all_topics()))} beyond and misses "
        f"{sorted(set(topics.all_topics()) - set(names))} of "
        "microcred_shared.contract.topics.all_topics()"
    )
    assert len(names) == len(set(names)), f"kafka-init creates some topics twice: {names}"
    for t in created:
        assert t.num_partitions == PARTITIONS, (
            f"kafka-init gives {t.name} {t.num_partitions} partitions, deploy/local {PARTITIONS}"
        )
        compact = (t.topic_configs or {}).get("cleanup.policy") == "compact"
        assert compact == (t.name in topics.compacted_topics()), (
            f"kafka-init's cleanup.policy for {t.name} is {t.topic_configs}, but "
            f"compacted_topics() is {topics.compacted_topics()}"
        )


def test_kafka_init_leaves_existing_topics_alone() -> None:
    created = [t.name for t in run_kafka_init(existing=set(topics.all_topics())).created]
    assert not created, f"kafka-init recreates existing topics {created}: it must be idempotent"


def test_kafka_init_gives_each_service_its_user_the_password_it_logs_in_with_and_its_acls(
) -> None:
    from microcred_shared import kafka_acls, kafka_scram

    admin = run_kafka_init(existing=set())
    init_env = compose_env("kafka-init")
    users = {u[0]: u for u in admin.scram}
    assert sorted(users) == sorted(f"svc-{s}" for s in SERVICES), (
        f"kafka-init makes SCRAM users {sorted(users)}"
    )
    for service in SERVICES:
        env = compose_env(service)
        assert env["MICROCRED_KAFKA_SASL_USERNAME"] == f"svc-{service}"
        # The same ${VAR} reaches the service and kafka-init (which turns it into the user's
        # salted SCRAM credential): prove that the credential is for that very value.
        ref = env["MICROCRED_KAFKA_SASL_PASSWORD"]
        variable = kafka_init().password_variable(service)
        assert COMPOSE_REF.match(ref) and ref.startswith("${" + variable), (
            f"{service}'s MICROCRED_KAFKA_SASL_PASSWORD is {ref}, not ${{{variable}...}}"
        )
        assert init_env[variable] == ref, f"kafka-init gets {variable} otherwise than {service}"
        _, mechanism, iterations, salt, salted, _ = users[f"svc-{service}"]
        assert salted == kafka_scram.salted_password(init_env[variable], salt, iterations)
        granted = {(r, n, pt, op) for r, n, pt, who, op in admin.acls
                   if who == f"User:svc-{service}"}
        wanted = {(int(a.resource), a.name, int(a.pattern), int(a.operation))
                  for a in kafka_acls.service_acls(service)}
        assert granted == wanted, (
            f"kafka-init grants svc-{service} {sorted(granted - wanted)} beyond and misses "
            f"{sorted(wanted - granted)} of microcred_shared.kafka_acls"
        )
    others = {who for *_, who, _ in admin.acls} - {f"User:svc-{s}" for s in SERVICES}
    assert not others, f"kafka-init grants ACLs to {others}"


def test_kafka_init_runs_in_a_service_image_that_has_the_topic_module() -> None:
    service_images = {compose_service(s).get("image") for s in SERVICES}
    for one_shot in ("kafka-init", "kafka-certs", "broker-audit-shipper"):
        image = compose_service(one_shot).get("image")
        assert image in service_images, (
            f"{one_shot} runs {image!r}, not one of the service images "
            f"{sorted(service_images)}, which have aiokafka, cryptography and microcred_shared"
        )
    for one_shot in ("kafka-init", "kafka-certs"):
        assert compose_service(one_shot).get("restart", "no") == "no", f"{one_shot} is one-shot"


# --- (c2) the compose broker: SCRAM over TLS, ACLs, the audit plugin (ADR 19, 21) -------------


def test_every_compose_service_logs_in_as_its_own_principal_over_tls() -> None:
    props = compose_kafka_properties()
    advertised = listeners(props, "advertised.listeners")
    by_address = {f"{h}:{p}": name for name, (h, p) in advertised.items()}
    certs = compose_service("kafka-certs")["command"]
    ca_dir = certs[certs.index("/opt/microcred/compose/kafka_certs.py") + 1]
    ca_volume = compose_mounts("kafka-certs")[ca_dir]
    for service in [*SERVICES, "broker-audit-shipper", "kafka-init"]:
        env = compose_env(service)
        assert env["MICROCRED_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", (
            f"{service} connects to Kafka with {env['MICROCRED_KAFKA_SECURITY_PROTOCOL']}"
        )
        listener = by_address.get(env["KAFKA_BOOTSTRAP_SERVERS"])
        assert listener == props["microcred.services.listener"], (
            f"{service} connects to {env['KAFKA_BOOTSTRAP_SERVERS']} ({listener}), not the "
            "services' listener"
        )
        cafile = Path(env["MICROCRED_KAFKA_SSL_CAFILE"])
        assert cafile.name == "ca.crt" and compose_mounts(service).get(
            f"{cafile.parent}") in (ca_volume, f"{ca_volume}"), (
            f"{service} trusts {cafile}, which is not in the {ca_volume} volume kafka-certs "
            "writes ca.crt to"
        )
    shipper = compose_env("broker-audit-shipper")
    assert shipper["MICROCRED_KAFKA_SASL_USERNAME"] == "svc-assessment"
    assert shipper["MICROCRED_KAFKA_SASL_PASSWORD"] == compose_env("assessment")[
        "MICROCRED_KAFKA_SASL_PASSWORD"]


def test_the_compose_broker_enforces_scram_over_tls_and_the_acls_everywhere_but_loopback(
) -> None:
    props = compose_kafka_properties()
    bound, proto = listeners(props), protocols(props)
    assert set(bound) == set(proto), f"listeners {bound} vs protocol map {proto}"
    for name, (host, _) in bound.items():
        if proto[name] != "SASL_SSL":
            assert host == "127.0.0.1", (
                f"listener {name} ({proto[name]}) is bound to {host or 'every address'}: only "
                "SASL_SSL listeners may be reachable from outside the broker's container"
            )
    sasl = [n for n, p in proto.items() if p == "SASL_SSL"]
    assert len(sasl) == 2, f"the compose broker has SASL_SSL listeners {sasl}"
    for name in sasl:
        prefix = f"listener.name.{name.lower()}."
        assert props.get(prefix + "sasl.enabled.mechanisms") == "SCRAM-SHA-512"
        assert "ScramLoginModule" in props.get(prefix + "scram-sha-512.sasl.jaas.config", "")
    assert props["authorizer.class.name"] == "ca.microcred.kafka.AuditingAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "connections.max.reauth.ms" not in props, "one limit for every listener (ADR 21)"
    services = props["microcred.services.listener"]
    assert services in sasl and props["microcred.services.principal.prefix"] == "svc-"
    limits = {n: int(props.get(f"listener.name.{n.lower()}.connections.max.reauth.ms", "0"))
              for n in sasl}
    assert limits[services] == 0, f"the services' listener cuts sessions after {limits}"
    (providers,) = [n for n in sasl if n != services]
    assert 0 < limits[providers] <= 60_000, (
        f"the providers' listener's re-authentication limit is {limits[providers]} ms"
    )
    told = compose_env("assessment")["MICROCRED_KAFKA_PROVIDER_BOOTSTRAP"]
    host, port = listeners(props, "advertised.listeners")[providers]
    assert told == f"{host}:{port}" and (int(told.rsplit(":")[-1]) in
                                          [h for h, _ in published_ports("kafka")]), (
        f"providers are told {told}, the providers' listener is advertised at {host}:{port}"
    )


def test_the_compose_broker_gets_its_tls_key_and_admin_from_kafka_certs_and_a_secret() -> None:
    props = compose_kafka_properties()
    assert props["ssl.keystore.type"] == "PKCS12"
    keystore = Path(props["ssl.keystore.location"])
    password = re.fullmatch(r"\$\{file:([^:]+):password\}", props["ssl.key.password"])
    assert password, "the key's password comes from kafka-certs' file (FileConfigProvider)"
    assert props["ssl.keystore.password"] == props["ssl.key.password"]
    assert props["config.providers"] == "file"
    certs = compose_service("kafka-certs")["command"]
    tls_dir = certs[certs.index("/opt/microcred/compose/kafka_certs.py") + 2]
    tls_volume = compose_mounts("kafka-certs")[tls_dir]
    kafka_mounts = compose_mounts("kafka")
    assert kafka_mounts.get(str(keystore.parent)) == tls_volume
    assert keystore.name == "broker.p12"
    assert Path(password.group(1)).parent == keystore.parent
    assert Path(password.group(1)).name == "broker-key.properties"
    owner = next(a for a in certs if a.startswith("--owner="))
    assert owner == "--owner=1000:1000", "broker.p12 must belong to apache/kafka's appuser"
    assert compose_service("kafka")["depends_on"]["kafka-certs"]["condition"] == (
        "service_completed_successfully")
    secret = _script_default("MICROCRED_KAFKA_ADMIN_PASSWORD_FILE")
    assert secret == "/run/secrets/" + compose_service("kafka")["secrets"][0]
    assert compose()["secrets"]["kafka_admin_password"]["environment"] == (
        "MICROCRED_KAFKA_ADMIN_PASSWORD")
    assert "--add-scram" in start_broker_script() and "name=admin" in start_broker_script()
    assert compose_env("kafka-init")["MICROCRED_KAFKA_SASL_PASSWORD"].startswith(
        "${MICROCRED_KAFKA_ADMIN_PASSWORD")


def test_the_audit_plugins_log_reaches_the_shipper() -> None:
    log4j = (KAFKA_AUDIT / "docker" / "log4j2.xml").read_text()
    audit_file = re.search(r'name="audit"\s+fileName="([^"]+)"', log4j)
    assert audit_file and 'name="microcred.kafka.audit"' in log4j
    path = Path(audit_file.group(1))
    command = compose_service("broker-audit-shipper")["command"]
    assert command[-2:] == ["ship-broker-audit", str(path)], command
    volume = compose_mounts("kafka")[str(path.parent)]
    assert compose_mounts("broker-audit-shipper")[str(path.parent)] == volume
    dockerfile_text = (KAFKA_AUDIT / "Dockerfile").read_text()
    assert "/opt/microcred/log4j2.xml" in start_broker_script()
    assert "COPY deploy/kafka-audit/docker/log4j2.xml /opt/microcred/log4j2.xml" in (
        dockerfile_text)


def test_the_broker_image_builds_the_plugin_from_what_the_build_context_holds() -> None:
    from microcred_devstack.kafka_jars import KAFKA_VERSION

    kafka = compose_service("kafka")
    assert (ROOT / kafka["build"]["dockerfile"]).resolve() == KAFKA_AUDIT / "Dockerfile"
    assert (COMPOSE_FILE.parent / kafka["build"].get("context", ".")).resolve() == ROOT
    args, parsed, names = _parse(KAFKA_AUDIT / "Dockerfile", {})
    assert args["KAFKA_IMAGE"] == f"apache/kafka:{KAFKA_VERSION}", (
        f"the broker image is built on {args['KAFKA_IMAGE']}, deploy/local runs {KAFKA_VERSION}"
    )
    assert kafka["image"].endswith(":" + KAFKA_VERSION)
    assert {"plugin", "compose"} <= names.keys()
    for stage in parsed:
        for instr, rest in stage:
            parts = shlex.split(rest)
            if instr != "COPY" or any(p.startswith("--from") for p in parts):
                continue
            for src in parts[:-1]:
                assert (ROOT / src).exists(), f"the broker Dockerfile copies missing {src}"
                left_out = [str(f.relative_to(ROOT)) for f in files_under(ROOT / src)
                            if not in_build_context(str(f.relative_to(ROOT)))]
                assert not left_out, f".dockerignore keeps {left_out[:3]} from the broker build"


def test_the_compose_broker_has_the_local_stacks_settings(tmp_path: Path) -> None:
    from microcred_devstack.kafka import KafkaNode
    from microcred_devstack.kafka_sasl import PROVIDER_LISTENER, SERVICES_LISTENER

    local = KafkaNode(tmp_path, port=19092, controller_port=19093, sasl=True,
                      sasl_port=19094, services_port=19095).server_properties()
    ours = compose_kafka_properties()
    rename = {f"listener.name.{PROVIDER_LISTENER.lower()}.": "listener.name.providers.",
              f"listener.name.{SERVICES_LISTENER.lower()}.": "listener.name.services."}
    addresses = {"listeners", "advertised.listeners", "listener.security.protocol.map",
                 "controller.quorum.voters", "log.dirs", "inter.broker.listener.name",
                 "microcred.services.listener"}  # fmt: skip
    differ = {}
    for key, value in local.items():
        if key in addresses:
            continue
        for old, new in rename.items():
            key = key.replace(old, new)
        if ours.get(key) != value:
            differ[key] = {"deploy/local": value, "docker-compose.yml": ours.get(key)}
    assert not differ, f"the compose broker's settings differ from deploy/local's: {differ}"


def test_postgres_18_creates_one_database_per_service_on_first_start() -> None:
    pg = compose_service("postgres")
    assert pg["image"].split(":")[1].split("-")[0].split(".")[0] == "18", (
        f"compose runs {pg['image']}, the stack targets PostgreSQL 18"
    )
    mounts = [v.split(":")[1] if isinstance(v, str) else v["target"] for v in pg["volumes"]]
    assert "/var/lib/postgresql" in mounts, (
        f"postgres:18 keeps its data under /var/lib/postgresql (PGDATA .../18/docker); the "
        f"volume is mounted at {mounts}"
    )
    scripts = []
    for ref in pg.get("configs", []):
        if ref["target"].startswith("/docker-entrypoint-initdb.d/"):
            scripts.append(compose()["configs"][ref["source"]]["content"])
    created = set(re.findall(r'CREATE DATABASE\s+"?([A-Za-z0-9_]+)"?', "\n".join(scripts)))
    wanted = {settings_class(s).model_construct().database_name for s in SERVICES}
    assert created == wanted, (
        f"postgres' init script creates {sorted(created)}, the services use {sorted(wanted)}"
    )


# --- (d) Dockerfiles -----------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_dockerfile_builds_its_service_from_the_lock_and_runs_it_unprivileged(
    service: str,
) -> None:
    path = dockerfile(service)
    rel = path.relative_to(ROOT)
    args, image_stages = stages(path, service)
    assert len(image_stages) >= 2, f"{rel} should be a multi-stage build"
    for stage in image_stages:
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)),
                       stage[0][1].split()[0])  # fmt: skip
        assert image == PYTHON_IMAGE, f"{rel} builds FROM {image}, not {PYTHON_IMAGE}"
    build_runs = [rest for stage in image_stages[:-1] for i, rest in stage if i == "RUN"]
    sync = f"uv sync --frozen --no-dev --package microcred-{service}"
    installs = [r for r in build_runs if sync in r and "--no-install-workspace" not in r]
    assert installs, f"no RUN of {rel}'s build stage installs the service with `{sync}`"
    final = image_stages[-1]
    cmds = [rest for i, rest in final if i == "CMD"]
    assert cmds, f"{rel} has no CMD"
    assert json.loads(cmds[-1]) == ["python", "-m", f"microcred_{service}"], (
        f"{rel}'s CMD is {cmds[-1]}, not python -m microcred_{service}"
    )
    assert not [rest for i, rest in final if i == "ENTRYPOINT"], f"{rel} sets an ENTRYPOINT"
    users = [rest for i, rest in final if i == "USER"]
    assert users, f"{rel}'s image runs as root (no USER)"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and uid != "0", (
        f"{rel} runs as USER {users[-1]}: use a numeric non-root uid (runAsNonRoot checks it)"
    )
    health = [rest for i, rest in final if i == "HEALTHCHECK"]
    assert health and "/healthz" in health[-1], f"{rel} has no HEALTHCHECK on /healthz"
    ports = [str(p) for p in exposed_ports(final)]
    assert port_var(service) in health[-1] or any(p in health[-1] for p in ports), (
        f"{rel}'s HEALTHCHECK does not use the service's port"
    )
    env = env_of(final)
    unread = sorted(
        k for k in env
        if k.startswith(("MICROCRED_", "OTEL_", "KAFKA_", "DATABASE_URL"))
        and not is_read(service, k)
    )  # fmt: skip
    assert not unread, f"{rel} sets {unread}, which microcred_{service} does not read"
    assert env.get("MICROCRED_HTTP_HOST") == "0.0.0.0", (
        f"{rel} should set MICROCRED_HTTP_HOST=0.0.0.0 or the port is unreachable from outside"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_everything_a_dockerfile_copies_exists_and_is_in_the_build_context(service: str) -> None:
    path = dockerfile(service)
    _, image_stages = stages(path, service)
    copied: dict[str, str] = {}  # image path -> repo path
    for stage in image_stages:
        for instr, rest in stage:
            if instr not in ("COPY", "ADD"):
                continue
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            if any(p.startswith("--from") for p in shlex.split(rest)):
                continue
            *sources, dest = parts
            for src in sources:
                assert (ROOT / src).exists(), f"{path.relative_to(ROOT)} copies missing {src}"
                files = list(files_under(ROOT / src))
                left_out = [str(f.relative_to(ROOT)) for f in files
                            if not in_build_context(str(f.relative_to(ROOT)))]  # fmt: skip
                assert not left_out, (
                    f"{path.relative_to(ROOT)} copies {src}, but .dockerignore keeps "
                    f"{left_out[:5]} out of the build context"
                )
                copied[dest.rstrip("/")] = src
    seed = env_of(image_stages[-1]).get("MICROCRED_SEED_FILE")
    if seed:
        sources = [src for dest, src in copied.items() if seed.startswith(dest + "/")]
        assert sources and (ROOT / sources[0] / seed.split("/")[-1]).is_file(), (
            f"the Dockerfile sets MICROCRED_SEED_FILE={seed} for {service}, which no COPY puts "
            "into the image"
        )


def test_the_build_context_leaves_out_secrets_and_local_state() -> None:
    for rel in (".env", ".git/config", ".venv/bin/python", ".state/stack.json",
                "tests/interop/node_modules/x/index.js",
                "shared/src/microcred_shared/__pycache__/settings.cpython-311.pyc"):  # fmt: skip
        assert not in_build_context(rel), f".dockerignore lets {rel} into the build context"


# --- (e) k8s topics and Kafka -------------------------------------------------------------


def test_the_k8s_kafka_topics_are_the_topics_of_the_topic_module() -> None:
    declared = {}
    for doc in k8s_objects("KafkaTopic").values():
        name = doc.get("spec", {}).get("topicName") or doc["metadata"]["name"]
        declared[name] = doc
    assert sorted(declared) == sorted(topics.all_topics()), (
        f"deploy/k8s declares KafkaTopics {sorted(set(declared) - set(topics.all_topics()))} "
        f"beyond and misses {sorted(set(topics.all_topics()) - set(declared))} of all_topics() "
        "(run: uv run python deploy/k8s/generate_topics.py)"
    )
    for name, doc in declared.items():
        policy = str(doc["spec"].get("config", {}).get("cleanup.policy", "delete"))
        compact = "compact" in policy.split(",")
        assert compact == (name in topics.compacted_topics()), (
            f"KafkaTopic {name} has cleanup.policy {policy}, but compacted_topics() is "
            f"{topics.compacted_topics()}"
        )
        assert doc["spec"]["partitions"] == PARTITIONS, (
            f"KafkaTopic {name} has {doc['spec']['partitions']} partitions, not {PARTITIONS}"
        )


def test_topics_yaml_is_what_generate_topics_writes() -> None:
    spec = importlib.util.spec_from_file_location("generate_topics", K8S / "generate_topics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "topics.yaml").read_text() == module.render(), (
        "deploy/k8s/topics.yaml is stale: run uv run python deploy/k8s/generate_topics.py"
    )


def test_the_strimzi_cluster_has_three_kraft_nodes_that_hold_every_topic() -> None:
    (kafka,) = k8s_objects("Kafka").values()
    cluster = kafka["metadata"]["name"]
    pools = list(k8s_objects("KafkaNodePool").values())
    assert pools, "deploy/k8s has no KafkaNodePool"
    for pool in pools:
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster, (
            f"KafkaNodePool {pool['metadata']['name']} belongs to another cluster"
        )
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers == 3 and controllers == 3, (
        f"the node pools give {brokers} brokers and {controllers} controllers, not 3 and 3"
    )
    config = kafka["spec"]["kafka"].get("config", {})
    assert str(config.get("auto.create.topics.enable")).lower() == "false", (
        "the Strimzi Kafka must not auto-create topics (topics are a contract, as in deploy/local)"
    )
    for topic in k8s_objects("KafkaTopic").values():
        name = topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster, (
            f"KafkaTopic {name} is labelled for another cluster than {cluster}"
        )
        replicas = topic["spec"]["replicas"]
        min_isr = int(topic["spec"].get("config", {}).get("min.insync.replicas", 1))
        assert replicas <= brokers and min_isr < replicas, (
            f"KafkaTopic {name}: {replicas} replicas and min.insync.replicas {min_isr} on "
            f"{brokers} brokers (need replicas <= brokers and min ISR < replicas)"
        )
    bootstrap = k8s_objects("ConfigMap")["microcred-common"]["data"]["KAFKA_BOOTSTRAP_SERVERS"]
    services = services_listener(kafka)
    assert bootstrap == f"{cluster}-kafka-bootstrap:{services['port']}", (
        f"the services' KAFKA_BOOTSTRAP_SERVERS {bootstrap} is not Strimzi's bootstrap Service "
        f"of {cluster} on the services' listener"
    )


def services_listener(kafka: dict[str, Any]) -> dict[str, Any]:
    (listener,) = [lst for lst in kafka["spec"]["kafka"]["listeners"]
                   if lst.get("authentication", {}).get("type") == "scram-sha-512"]
    return listener


def test_the_strimzi_cluster_runs_scram_over_tls_the_acls_and_the_audit_plugin() -> None:
    (kafka,) = k8s_objects("Kafka").values()
    spec = kafka["spec"]["kafka"]
    for listener in spec["listeners"]:
        assert listener.get("tls") is True, f"listener {listener['name']} has no TLS"
        auth = listener.get("authentication", {})
        scram = auth.get("type") == "scram-sha-512" or (
            auth.get("type") == "custom" and auth.get("sasl") is True
            and auth["listenerConfig"].get("sasl.enabled.mechanisms") == "SCRAM-SHA-512")
        assert scram, f"listener {listener['name']} does not require SCRAM-SHA-512: {auth}"
    assert spec["authorization"] == {"type": "custom", "supportsAdminApi": True,
                                     "authorizerClass": "ca.microcred.kafka.AuditingAuthorizer"}
    assert str(spec["config"]["allow.everyone.if.no.acl.found"]).lower() == "false"
    services = services_listener(kafka)
    assert spec["config"]["microcred.services.listener"] == (
        f"{services['name'].upper()}-{services['port']}"), "Strimzi names listeners NAME-PORT"
    assert spec["config"]["microcred.services.principal.prefix"] == "svc-"
    assert "connections.max.reauth.ms" not in spec["config"]
    (providers,) = [lst for lst in spec["listeners"] if lst is not services]
    limit = int(providers["authentication"]["listenerConfig"]["connections.max.reauth.ms"])
    assert 0 < limit <= 60_000, f"the providers' listener re-authenticates every {limit} ms"
    assessment = {e["name"]: e.get("value") for e in deployment_env("assessment")[0].values()}
    assert assessment["MICROCRED_KAFKA_PROVIDER_BOOTSTRAP"].endswith(f":{providers['port']}")
    assert spec.get("image"), "the brokers need an image with the audit plugin (README.md)"


def test_the_k8s_kafka_users_are_the_service_principals_with_the_derived_acls() -> None:
    from microcred_shared import kafka_acls

    users = k8s_objects("KafkaUser")
    assert sorted(users) == sorted(f"svc-{s}" for s in SERVICES), sorted(users)
    (kafka,) = k8s_objects("Kafka").values()
    kinds = {"topic": kafka_acls.Resource.TOPIC, "group": kafka_acls.Resource.GROUP,
             "cluster": kafka_acls.Resource.CLUSTER}
    patterns = {"literal": kafka_acls.Pattern.LITERAL, "prefix": kafka_acls.Pattern.PREFIXED}
    for service in SERVICES:
        user = users[f"svc-{service}"]
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
        declared = set()
        for rule in user["spec"]["authorization"]["acls"]:
            res = rule["resource"]
            kind = kinds[res["type"]]
            name = res.get("name", kafka_acls.CLUSTER_NAME)
            pattern = patterns[res.get("patternType", "literal")]
            for op in rule["operations"]:
                declared.add(kafka_acls.Acl(kind, name, pattern, kafka_acls.Operation[op.upper()]))
        wanted = set(kafka_acls.service_acls(service))
        assert declared == wanted, (
            f"KafkaUser svc-{service} has {sorted(declared - wanted)} beyond and misses "
            f"{sorted(wanted - declared)} of kafka_acls (run deploy/k8s/generate_users.py)"
        )


def test_users_yaml_is_what_generate_users_writes() -> None:
    module = load_script(K8S / "generate_users.py")
    assert (K8S / "users.yaml").read_text() == module.render(), (
        "deploy/k8s/users.yaml is stale: run uv run python deploy/k8s/generate_users.py"
    )


@pytest.mark.parametrize("service", SERVICES)
def test_each_deployment_logs_in_to_kafka_as_its_own_user_with_strimzis_secret_and_ca(
    service: str,
) -> None:
    entries, _ = deployment_env(service)
    value = {k: e.get("value") for k, e in entries.items()}
    assert value["MICROCRED_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert value["MICROCRED_KAFKA_SASL_USERNAME"] == f"svc-{service}"
    ref = entries["MICROCRED_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": f"svc-{service}", "key": "password"}, (
        f"{service} reads its Kafka password from {ref}, not the Secret Strimzi makes for "
        f"KafkaUser svc-{service}"
    )
    assert f"svc-{service}" in k8s_objects("KafkaUser")
    cafile = Path(value["MICROCRED_KAFKA_SSL_CAFILE"])
    pod = k8s_objects("Deployment")[service]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[str(cafile.parent)]]
    (kafka,) = k8s_objects("Kafka").values()
    assert volume["secret"]["secretName"] == f"{kafka['metadata']['name']}-cluster-ca-cert"
    assert {"key": "ca.crt", "path": cafile.name} in volume["secret"]["items"]


# --- k8s services --------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_only_existing_ones() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
    assert listed == present, (
        f"kustomization.yaml lists {sorted(listed - present)} that do not exist and leaves out "
        f"{sorted(present - listed)}"
    )
    kinds = {d.get("kind") for d in k8s_docs()}
    for kind in ("Namespace", "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Deployment",
                 "Service", "HorizontalPodAutoscaler", "ConfigMap"):  # fmt: skip
        assert kind in kinds, f"deploy/k8s has no {kind}"
    for doc in k8s_docs():
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), (
            f"a k8s document lacks apiVersion or metadata.name: {str(doc)[:120]}"
        )


def deployment_env(service: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(env entries by name, where each name comes from) of the service's Deployment."""
    deployment = k8s_objects("Deployment").get(service)
    assert deployment, f"deploy/k8s has no Deployment {service}"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    config_maps = k8s_objects("ConfigMap")
    entries: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, (
            f"{service}'s Deployment takes envFrom {source}: only ConfigMaps, whose keys this "
            "test can check (reference secrets one by one with secretKeyRef)"
        )
        name = source["configMapRef"]["name"]
        assert name in config_maps, f"{service} reads ConfigMap {name}, which deploy/k8s lacks"
        for key, value in config_maps[name].get("data", {}).items():
            entries[key] = {"name": key, "value": value}
            origin[key] = f"ConfigMap {name}"
    for entry in container.get("env", []):
        entries[entry["name"]] = entry
        origin[entry["name"]] = "env"
    return entries, origin


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_a_deployment_sets_is_one_its_service_reads(service: str) -> None:
    entries, origin = deployment_env(service)
    unread = sorted(f"{n} ({origin[n]})" for n in entries if not is_read(service, n))
    assert not unread, (
        f"the k8s Deployment of {service} sets {unread}, which microcred_{service}.settings "
        "does not read"
    )
    missing = [sorted(g) for g in required_groups(service) if not g & entries.keys()]
    assert not missing, f"the k8s Deployment of {service} does not set required {missing}"


# Wallet delivery (ADR 31): the registry asks issuance for holder-bound copies with the
# one service token both hold, at the URL it is told.
WALLET_TOKEN, ISSUANCE_URL = "MICROCRED_SERVICE_TOKEN", "MICROCRED_ISSUANCE_URL"


def _port(service: str) -> int:
    return int(settings_class(service).model_fields["http_port"].default)


def test_compose_gives_registry_and_issuance_one_service_token_and_the_issuance_url() -> None:
    issuance, registry = compose_env("issuance"), compose_env("registry")
    assert WALLET_TOKEN in issuance and WALLET_TOKEN in registry, (
        "docker-compose.yml must give both issuance and registry MICROCRED_SERVICE_TOKEN")
    assert COMPOSE_REF.match(issuance[WALLET_TOKEN]), issuance[WALLET_TOKEN]
    assert issuance[WALLET_TOKEN] == registry[WALLET_TOKEN], "two different service tokens"
    assert registry.get(ISSUANCE_URL) == f"http://issuance:{issuance['MICROCRED_ISSUANCE_HTTP_PORT']}"


def test_k8s_gives_registry_and_issuance_one_service_token_and_the_issuance_url() -> None:
    issuance, registry = deployment_env("issuance")[0], deployment_env("registry")[0]
    refs = [e.get(WALLET_TOKEN, {}).get("valueFrom", {}).get("secretKeyRef")
            for e in (issuance, registry)]
    assert refs[0] and refs[0] == refs[1], f"issuance and registry take {refs}"
    [service] = [s for name, s in k8s_objects("Service").items() if name == "issuance"]
    [port] = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http"]
    assert registry.get(ISSUANCE_URL, {}).get("value") == f"http://issuance:{port}"


def test_the_local_stack_gives_registry_the_token_and_url_issuance_checks(tmp_path: Path) -> None:
    from microcred_devstack import config

    ports = {s: _port(s) + 1000 for s in SERVICES}
    env = config.stack_settings("127.0.0.1:9092", "postgresql://x@127.0.0.1/postgres", ports,
                                tmp_path, {})
    assert env[WALLET_TOKEN] and env[ISSUANCE_URL] == f"http://127.0.0.1:{ports['issuance']}"
    for service in ("issuance", "registry"):
        assert is_read(service, WALLET_TOKEN)
    assert is_read("registry", ISSUANCE_URL) and not is_read(
        "issuance", "MICROCRED_HOLDER_BINDING_TOKEN")


@pytest.mark.parametrize("service", SERVICES)
def test_each_deployment_probes_healthz_and_runs_the_images_user(service: str) -> None:
    deployment = k8s_objects("Deployment")[service]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe == "startupProbe" and probe not in container:
            continue  # optional; checked like the others when present
        get = container.get(probe, {}).get("httpGet")
        assert get and get["path"] == "/healthz", f"{service}'s {probe} is no GET /healthz"
        port = ports.get(get["port"], get["port"])
        assert port in ports.values(), f"{service}'s {probe} probes port {get['port']}"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container.get("resources", {}).get(kind, {}).keys(), (
            f"{service}'s container lacks cpu/memory {kind}"
        )
    assert container["image"].split(":")[0].split("/")[-1] == f"microcred-{service}", (
        f"{service}'s Deployment runs image {container['image']}"
    )
    assert f"microcred-{service}" in {i["name"] for i in kustomization().get("images", [])}, (
        f"kustomization.yaml has no images entry to set microcred-{service}'s registry and tag"
    )
    assert pod.get("enableServiceLinks") is False, (
        f"{service}'s pods should set enableServiceLinks: false (no injected *_PORT variables)"
    )
    uid = [rest for i, rest in stages(dockerfile(service), service)[1][-1] if i == "USER"][-1]
    run_as = pod.get("securityContext", {}).get("runAsUser")
    assert str(run_as) == uid.split(":")[0], (
        f"{service}'s pods run as uid {run_as}, its image's USER is {uid}"
    )
    selector = deployment["spec"]["selector"]["matchLabels"]
    services = [s for s in k8s_objects("Service").values() if s["spec"]["selector"] == selector]
    assert len(services) == 1, f"{len(services)} Services select {service}'s pods, not one"
    (svc,) = services
    target = svc["spec"]["ports"][0]["targetPort"]
    assert ports.get(target, target) in ports.values(), (
        f"Service {svc['metadata']['name']} targets port {target}, which {service} does not open"
    )


def test_each_consumer_service_has_an_autoscaler_that_stops_at_the_partition_count() -> None:
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h
            for h in k8s_objects("HorizontalPodAutoscaler").values()}  # fmt: skip
    partitions = min(t["spec"]["partitions"] for t in k8s_objects("KafkaTopic").values())
    consumers = consumer_services()
    assert consumers, "no service subscribes to a topic: consumer_services() found none"
    for service in consumers:
        hpa = hpas.get(service)
        assert hpa, f"{service} consumes topics but has no HorizontalPodAutoscaler"
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["kind"] == "Deployment"
        assert spec.get("minReplicas", 1) <= spec["maxReplicas"] <= partitions, (
            f"{service}'s HPA scales to {spec['maxReplicas']} replicas; past {partitions} "
            "(the topics' partitions) the extra consumers sit idle"
        )
        assert "replicas" not in k8s_objects("Deployment")[service]["spec"], (
            f"{service}'s Deployment sets replicas, which fights its HPA on every apply"
        )


# --- (f) secrets ---------------------------------------------------------------------------


def test_no_secret_is_written_into_docker_compose() -> None:
    for name in compose()["services"]:
        for key, value in compose_env(name).items():
            if key.endswith("DATABASE_URL"):
                _, password = split_url_password(value)
                assert password is None or COMPOSE_REF.match(password), (
                    f"{name}'s {key} contains a literal password: use ${{VAR:?...}}"
                )
            elif SECRET_NAME.search(key):
                assert COMPOSE_REF.match(value), (
                    f"{name}'s {key} is the literal {value[:4]}...: use a ${{{key}:?...}} "
                    "reference (no default) filled from the environment or .env"
                )
    for secret in ("MICROCRED_KEY_ENCRYPTION_KEY", "MICROCRED_OPERATOR_TOKEN"):
        users = [s for s in SERVICES if secret in read_names(s)]
        for service in users:
            assert secret in compose_env(service), f"compose does not give {service} {secret}"


def test_no_secret_value_is_committed_in_the_k8s_manifests() -> None:
    kinds = {d["kind"] for d in k8s_docs()}
    assert "Secret" not in kinds, "deploy/k8s commits a Secret: create it in the cluster instead"
    for name, cm in k8s_objects("ConfigMap").items():
        leaked = [k for k in cm.get("data", {}) if SECRET_NAME.search(k) or "DATABASE_URL" in k]
        assert not leaked, f"ConfigMap {name} holds secret-like {leaked}: use a Secret"
    for service in SERVICES:
        entries, _ = deployment_env(service)
        for key, entry in entries.items():
            if SECRET_NAME.search(key) or key.endswith("DATABASE_URL"):
                assert "secretKeyRef" in entry.get("valueFrom", {}), (
                    f"{service}'s {key} should come from a Secret (valueFrom.secretKeyRef), "
                    f"it is {entry}"
                )
    readme = (K8S / "README.md").read_text()
    for service in SERVICES:
        for entry in deployment_env(service)[0].values():
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in readme and ref["key"] in readme, (
                    f"deploy/k8s/README.md does not say to create Secret {ref['name']} with key "
                    f"{ref['key']} ({service} needs it)"
                )
