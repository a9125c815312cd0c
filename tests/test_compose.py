"""Offline checks of docker-compose.yml and the Dockerfiles under docker/.

No Docker engine runs where these were written, so nothing here builds an image or starts a container (see
docker/README.md for what was not run). What can be checked without one is checked: the compose file parses and
uses known keys, its references (build files, dependencies, volumes, service names in URLs) point at things that
exist, the credentials and names that two services must share are the same expressions, MLflow's Host check
admits the clients of this network, the images pin the versions the rest of the project is tested with, and the
kiln image builds the package and binary that the workspace defines. PyYAML (brought by mlflow) and the standard
library only; runs in well under a second.
"""

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKER_DIR = REPO / "docker"
DOCKER_README = DOCKER_DIR / "README.md"
KILN_DOCKERFILE = DOCKER_DIR / "kiln.Dockerfile"
MLFLOW_DOCKERFILE = DOCKER_DIR / "mlflow.Dockerfile"

# Compose Specification keys this file may use (a typo such as `healtcheck` is otherwise silently ignored by
# nothing here, and rejected by `docker compose` only on a machine that has it).
TOP_LEVEL_KEYS = {"name", "services", "volumes", "networks", "secrets", "configs"}
SERVICE_KEYS = {
    "build", "command", "container_name", "depends_on", "entrypoint", "env_file", "environment", "expose",
    "healthcheck", "image", "networks", "ports", "profiles", "restart", "user", "volumes", "working_dir",
}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, $VAR; `$$` is a literal `$`.
VAR_RE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# ---------------------------------------------------------------------------------------------------- helpers


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def variable_refs(text):
    """(name, operator, default) for every variable reference in `text`; `$$` escapes are skipped."""
    refs = []
    for m in VAR_RE.finditer(text):
        if m.group(0) == "$$":
            continue
        refs.append((m.group(1) or m.group(4), m.group(2), m.group(3)))
    return refs


def interpolate(node, env):
    """Compose's interpolation with `env` as the environment (an empty one gives the defaults)."""
    if isinstance(node, dict):
        return {interpolate(k, env): interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    if not isinstance(node, str):
        return node

    def sub(m):
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?") and (value is None or (op == ":?" and not value)):
            raise AssertionError(f"${{{name}}} is required: {arg}")
        return value or ""

    return VAR_RE.sub(sub, node)


def parse_dockerfile(path):
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        instruction, _, args = current.partition(" ")
        instructions.append((instruction.upper(), args.strip()))
        current = ""
    assert not current, f"{path.name}: a continuation line runs off the end of the file"
    return instructions


def stages(instructions):
    """[(image, stage name or None)] for each FROM."""
    out = []
    for instruction, args in instructions:
        if instruction == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            out.append((words[0], name))
    return out


def flag_value(args, flag):
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def host_ports(service):
    """[(host ip, host port, container port)] of a resolved service's `ports`."""
    out = []
    for spec in service.get("ports", []):
        assert isinstance(spec, str), f"long-form port entries are not handled by this test: {spec!r}"
        parts = spec.split("/")[0].split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("0.0.0.0", parts[0], parts[1]))
        else:
            out.append(("0.0.0.0", None, parts[0]))
    return out


def mlflow_allows_host(allowed, host):
    """MLflow 3.17.2's rule (mlflow/server/security_utils.py, is_allowed_host_header): exact match, or fnmatch
    for patterns with `*`; `*` alone admits every host. An explicit list replaces the default one."""
    if "*" in allowed:
        return True
    return any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)


def requirement_pin(name):
    for line in (REPO / "tests/requirements.txt").read_text().splitlines():
        # a name may carry extras: mlflow[auth]==3.17.2
        if line.split("==")[0].split("[")[0].strip().lower() == name:
            return line.split("==")[1].strip()
    raise AssertionError(f"{name} is not pinned in tests/requirements.txt")


def pip_pins(dockerfile):
    pins = {}
    for instruction, args in parse_dockerfile(dockerfile):
        if instruction == "RUN" and "pip install" in args:
            for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([0-9][A-Za-z0-9_.]*)", args):
                pins[name.lower()] = version
    return pins


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw):
    """The compose file with every variable at its default (an empty environment)."""
    return interpolate(raw, {})


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


@pytest.fixture(scope="module")
def kiln_cli():
    return tomllib.loads((REPO / "crates/kiln-cli/Cargo.toml").read_text())


# ---------------------------------------------------------------------------------------------------- compose


def test_compose_parses_and_uses_known_keys(raw):
    assert isinstance(raw, dict) and raw.get("services"), "docker-compose.yml has no services"
    assert set(raw) <= TOP_LEVEL_KEYS, f"unknown top-level keys: {set(raw) - TOP_LEVEL_KEYS}"
    for name, service in raw["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: unknown keys {set(service) - SERVICE_KEYS}"
        assert "image" in service or "build" in service, f"{name}: neither image nor build"
        if "healthcheck" in service:
            assert set(service["healthcheck"]) <= HEALTHCHECK_KEYS, f"{name}: unknown healthcheck keys"


def test_every_build_dockerfile_exists(services):
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"mlflow", "kiln-serve"} <= set(built)
    for name, build in built.items():
        context = REPO / build["context"]
        assert context.is_dir(), f"{name}: build context {build['context']} is not a folder"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile.relative_to(REPO)} does not exist"


def test_depends_on_names_defined_services_with_fitting_conditions(services):
    for name, service in services.items():
        deps = service.get("depends_on", {})
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on {dep}, which is not a service"
            assert dep != name
            condition = spec["condition"]
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {dep}: unknown condition {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy; it has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart", "no") == "no", f"{name} waits for {dep} to exit; it restarts"
            # a profiled dependency would be missing whenever its profile is off
            assert "profiles" not in services[dep] or services[dep]["profiles"] == service.get("profiles")


def test_every_long_running_service_has_a_healthcheck(services):
    one_shots = {name for name, s in services.items() if s.get("restart", "no") == "no"}
    assert one_shots == {"minio-init"}, f"only the bucket init should be one-shot, got {one_shots}"
    for name, service in services.items():
        if name in one_shots:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: no usable healthcheck"


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name}: volume {source} is not declared at the top level"


def test_host_ports_are_not_duplicated(services):
    seen = {}
    for name, service in services.items():
        for ip, host, _container in host_ports(service):
            if host is None:
                continue
            for other_ip, other_host in seen:
                clash = other_host == host and "0.0.0.0" in (ip, other_ip) or (other_ip, other_host) == (ip, host)
                assert not clash, f"{name} publishes {ip}:{host}, already used by {seen[(other_ip, other_host)]}"
            seen[(ip, host)] = name
    assert seen, "nothing is published to the host"


def test_every_compose_variable_is_documented(raw):
    readme = DOCKER_README.read_text()
    refs = [ref for text in walk_strings(raw) for ref in variable_refs(text)]
    assert refs, "the compose file uses no variables: where do the credentials come from?"
    without_default = {name for name, op, _ in refs if op is None}
    for name in {name for name, _, _ in refs} | without_default:
        assert f"`{name}`" in readme, f"${{{name}}} is used in docker-compose.yml but not listed in docker/README.md"


def test_credential_defaults_are_marked_as_development_values(raw):
    for text in walk_strings(raw):
        for name, op, default in variable_refs(text):
            if re.search("PASSWORD|SECRET|TOKEN", name):
                assert op == ":-" and "dev" in default, f"${{{name}}}: a default secret must say it is a dev one"
    minio = interpolate(raw["services"]["minio"]["environment"], {})
    assert len(minio["MINIO_ROOT_USER"]) >= 3 and len(minio["MINIO_ROOT_PASSWORD"]) >= 8, "MinIO refuses these"


# ---------------------------------------------------------------------------------------------------- mlflow


def test_mlflow_image_pins_the_tested_version():
    pins = pip_pins(MLFLOW_DOCKERFILE)
    assert pins.get("mlflow") == "3.17.2" == requirement_pin("mlflow")
    assert {"psycopg2-binary", "boto3"} <= set(pins), "the Postgres driver and boto3 (S3) must be installed"
    instructions = parse_dockerfile(MLFLOW_DOCKERFILE)
    entrypoint = [args for i, args in instructions if i == "ENTRYPOINT"]
    assert entrypoint == ['["mlflow", "server"]']
    env = " ".join(args for i, args in instructions if i == "ENV")
    assert "MLFLOW_DISABLE_TELEMETRY=true" in env and "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in env
    assert any(i == "USER" and args != "root" for i, args in instructions), "the server must not run as root"


def test_mlflow_stores_point_at_postgres_and_the_bucket_minio_init_creates(raw, services):
    mlflow = services["mlflow"]
    command, env = mlflow["command"], mlflow["environment"]

    backend = urlsplit(env["MLFLOW_BACKEND_STORE_URI"])
    # SQLAlchemy 2.1 (what mlflow 3.17.2 installs) maps a bare postgresql:// to psycopg 3, which the image lacks
    assert backend.scheme == "postgresql+psycopg2" and "psycopg2-binary" in pip_pins(MLFLOW_DOCKERFILE)
    assert backend.hostname == "postgres" and backend.hostname in services and backend.port == 5432
    postgres = services["postgres"]["environment"]
    assert (backend.username, backend.password, backend.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])
    # the same variables, not just the same defaults: overriding POSTGRES_PASSWORD must change both
    override = {"POSTGRES_USER": "u1", "POSTGRES_PASSWORD": "p1", "POSTGRES_DB": "d1"}
    assert urlsplit(interpolate(raw["services"]["mlflow"]["environment"], override)
                    ["MLFLOW_BACKEND_STORE_URI"]).netloc == "u1:p1@postgres:5432"
    assert interpolate(raw["services"]["postgres"]["environment"], override)["POSTGRES_DB"] == "d1"

    destination = urlsplit(flag_value(command, "--artifacts-destination"))
    assert destination.scheme == "s3"
    init_script = " ".join(services["minio-init"]["command"])
    assert f"mb --ignore-existing local/{destination.netloc}" in init_script
    assert "mc alias set local http://minio:9000" in init_script

    endpoint = urlsplit(env["MLFLOW_S3_ENDPOINT_URL"])
    assert (endpoint.hostname, endpoint.port) == ("minio", 9000) and "minio" in services
    override = {"MINIO_ROOT_USER": "u2", "MINIO_ROOT_PASSWORD": "p2"}
    for name in ("minio", "minio-init"):
        assert interpolate(raw["services"][name]["environment"], override) == {
            "MINIO_ROOT_USER": "u2", "MINIO_ROOT_PASSWORD": "p2"}
    mlflow_env = interpolate(raw["services"]["mlflow"]["environment"], override)
    assert (mlflow_env["AWS_ACCESS_KEY_ID"], mlflow_env["AWS_SECRET_ACCESS_KEY"]) == ("u2", "p2")


def test_mlflow_listens_where_its_healthcheck_and_ports_look(services):
    mlflow = services["mlflow"]
    port = flag_value(mlflow["command"], "--port")
    assert flag_value(mlflow["command"], "--host") == "0.0.0.0"
    assert f"http://127.0.0.1:{port}/health" in " ".join(mlflow["healthcheck"]["test"])
    assert [container for _, _, container in host_ports(mlflow)] == [port]


def test_mlflow_host_check_admits_kiln_serve_and_the_browser(services):
    mlflow, kiln = services["mlflow"], services["kiln-serve"]
    allowed = [h.strip() for h in flag_value(mlflow["command"], "--allowed-hosts").split(",")]
    tracking = urlsplit(kiln["environment"]["MLFLOW_TRACKING_URI"])
    assert tracking.scheme == "http" and tracking.hostname == "mlflow" and "mlflow" in services
    assert str(tracking.port) == flag_value(mlflow["command"], "--port")
    assert mlflow_allows_host(allowed, tracking.netloc), f"MLflow would answer 403 to Host {tracking.netloc}"
    for _ip, host_port, _ in host_ports(mlflow):
        for name in ("localhost", "127.0.0.1"):
            assert mlflow_allows_host(allowed, f"{name}:{host_port}"), f"403 for a browser at {name}:{host_port}"
    assert not mlflow_allows_host(allowed, "attacker.example:5000"), "the Host check must stay on"


# ---------------------------------------------------------------------------------------------------- kiln


def test_kiln_dockerfile_builds_the_workspace_binary(kiln_cli):
    package = kiln_cli["package"]["name"]
    binaries = [b["name"] for b in kiln_cli.get("bin", [])] or [package]
    assert package == "kiln-cli" and binaries == ["kiln"]
    instructions = parse_dockerfile(KILN_DOCKERFILE)
    runs = [args for i, args in instructions if i == "RUN"]
    assert any(f"cargo build --release --locked -p {package}" in run for run in runs)
    assert any(f"target/release/{binaries[0]} " in run for run in runs), "the built binary is not copied out"
    assert [args for i, args in instructions if i == "ENTRYPOINT"] == [f'["{binaries[0]}"]']
    assert any(i == "USER" and args not in ("root", "0") for i, args in instructions)

    (builder, builder_name), (runtime, _) = stages(instructions)[:2]
    copies_from = {re.search(r"--from=(\S+)", args).group(1) for i, args in instructions
                   if i == "COPY" and "--from=" in args}
    assert copies_from == {builder_name}, "COPY --from must name the builder stage"

    # Rust at least the workspace's rust-version; the same Debian (glibc) in both stages
    rust_version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    tag = re.fullmatch(r"rust:(\d+)\.(\d+)(?:\.\d+)?-(\w+)", builder)
    assert tag, f"pin the builder to rust:<major>.<minor>-<debian>, got {builder}"
    assert (int(tag[1]), int(tag[2])) >= tuple(int(x) for x in rust_version.split(".")[:2])
    assert re.fullmatch(rf"debian:{tag[3]}(-slim)?", runtime), f"{runtime} is not the builder's Debian {tag[3]}"


def test_kiln_builder_has_the_native_build_tools():
    text = " ".join(args for i, args in parse_dockerfile(KILN_DOCKERFILE) if i == "RUN")
    assert "clang" in text and "libclang-dev" in text, "bindgen (lightgbm3) needs clang and libclang-dev"
    assert "libomp-dev" in text, "XGBoost is built by clang with LLVM's OpenMP (kiln-xgboost-sys)"
    cmake = pip_pins(KILN_DOCKERFILE).get("cmake")
    assert cmake == requirement_pin("cmake"), "use the CMake the local builds use"
    assert tuple(int(x) for x in cmake.split(".")[:2]) >= (3, 28), "LightGBM 4.7 needs CMake >= 3.28"


def test_kiln_runtime_has_the_shared_libraries():
    text = " ".join(args for i, args in parse_dockerfile(KILN_DOCKERFILE) if i == "RUN")
    assert "libomp5" in text, "LightGBM and XGBoost run on LLVM's OpenMP runtime (libomp)"
    assert "ca-certificates" in text
    if "openssl-sys" in (REPO / "Cargo.lock").read_text():
        assert "libssl3" in text, "a crate links OpenSSL: the runtime image needs libssl3"


def test_kiln_build_context_holds_what_the_dockerfile_copies():
    ignore_file = KILN_DOCKERFILE.with_name(KILN_DOCKERFILE.name + ".dockerignore")
    patterns = [p.strip() for p in ignore_file.read_text().splitlines() if p.strip() and not p.startswith("#")]
    sources = []
    for instruction, args in parse_dockerfile(KILN_DOCKERFILE):
        if instruction == "COPY" and "--from=" not in args:
            words = [w for w in args.split() if not w.startswith("--")]
            sources += words[:-1]
    assert {"Cargo.toml", "Cargo.lock", ".cargo", "crates"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
        for pattern in patterns:
            assert not fnmatch.fnmatch(source, pattern.removeprefix("**/")), f"{source} is excluded by {pattern}"
    members = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"]
    assert all(m.split("/")[0] in sources for m in members), "a workspace member is not copied"
    # what git ignores at the top (venv, build outputs, runs) stays out of the context too
    for line in (REPO / ".gitignore").read_text().splitlines():
        if line.startswith("/") and "*" not in line:
            assert line.strip("/") in patterns, f"{line} is ignored by git but sent to the Docker build"


def test_kiln_serve_serves_the_production_alias_on_its_published_port(services):
    kiln = services["kiln-serve"]
    command = kiln["command"]
    assert command[0] == "serve"
    assert re.fullmatch(r"models:/[\w.-]+@[\w-]+", flag_value(command, "--model"))
    assert flag_value(command, "--host") == "0.0.0.0"
    port = flag_value(command, "--port")
    assert [container for _, _, container in host_ports(kiln)] == [port]
    assert f"/dev/tcp/127.0.0.1/{port}" in " ".join(kiln["healthcheck"]["test"])
    assert "EXPOSE " + port in KILN_DOCKERFILE.read_text()
    assert kiln["depends_on"]["mlflow"]["condition"] == "service_healthy"


def test_kiln_serve_image_is_multi_stage_non_root_with_a_health_check(services):
    instructions = parse_dockerfile(KILN_DOCKERFILE)
    assert [name for _, name in stages(instructions)] == ["builder", "runtime", "serve"]
    assert stages(instructions)[2][0] == "runtime", "serve must build on the runtime stage (no toolchain in it)"
    users = [args for i, args in instructions if i == "USER"]
    assert users == ["kiln"], f"one non-root user for runtime and serve, got {users}"
    (health,) = [args for i, args in instructions if i == "HEALTHCHECK"]
    probe = json.loads(health.split("CMD", 1)[1])
    cmd = json.loads([args for i, args in instructions if i == "CMD"][-1])
    port = flag_value(cmd, "--port")
    assert cmd[0] == "serve" and flag_value(cmd, "--host") == "0.0.0.0"
    assert f"/dev/tcp/127.0.0.1/{port}" in probe[-1] and "GET /ready" in probe[-1]
    assert services["kiln-serve"]["build"]["target"] == "serve"
