"""infra/bicep: parsed with the tree-sitter Bicep grammar (tree-sitter-bicep from PyPI; the Bicep
CLI cannot be installed here) and checked against what the app needs. app/config.py is the source
of truth for environment variables: a new setting fails here until the Bicep declares it (or it is
listed below with the reason its default is right in production).

The grammar (1.1.0) predates .bicepparam files, so those are checked by rewriting each
``param x = expr`` to ``var x = expr`` and parsing that as Bicep: the expressions are Bicep
expressions, the ``using`` line is checked by hand. ``az bicep build`` and ``what-if`` run in
.github/workflows/deploy.yml where the Azure CLI exists.
"""

from __future__ import annotations

import ast
import inspect
import re
from functools import cache
from pathlib import Path

import pytest
import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[1]
BICEP = ROOT / "infra" / "bicep"
MODULES = sorted((BICEP / "modules").glob("*.bicep"))
PARAM_FILES = sorted((BICEP / "env").glob("*.bicepparam"))

# Settings whose app/config.py default is right in Azure, with the reason.
DEFAULT_IS_RIGHT = {
    "PUBLIC_PORT": "ProductionConfig: empty (https on 443)",
    "SESSION_COOKIE_NAME": "ProductionConfig hard-codes __Host-fd_session",
    "MAX_CONTENT_LENGTH": "10 MB default",
    "MAP_TILE_ATTRIBUTION": "OpenStreetMap attribution default",
    "RATELIMIT_ENABLED": "on by default",
    "LOGIN_LIMIT_PER_EMAIL": "default limit",
    "LOGIN_LIMIT_PER_IP": "default limit",
    "STRIPE_API_BASE": "empty = api.stripe.com (set only for the test stand-in)",
    "STRIPE_MAX_NETWORK_RETRIES": "SDK default 2",
    "STRIPE_TIMEOUT_S": "20 s default",
    "STRIPE_FORM_ORIGINS": "Stripe's hosted pages",
    "ROUTING_PROVIDER": "haversine until a road-matrix service is deployed (docs/routes.md)",
    "ROUTING_OSRM_URL": "only with ROUTING_PROVIDER=osrm",
    "MAPBOX_TOKEN": "only with ROUTING_PROVIDER=mapbox (then a Key Vault secret)",
    "ROUTING_TIME_LIMIT_S": "5 s per day plan",
    "TWILIO_API_BASE": "empty = api.twilio.com (set only for the stand-in)",
    "GOOGLE_API_BASE": "empty = Google's own endpoints (set only for the stand-in)",
    "GOOGLE_PUSH": "on: watch channels to https://app.<base>/webhooks/google/calendar",
    "GOOGLE_SYNC_DAYS": "60 days imported (or the business's horizon, if longer)",
    "DATABASE_OWNER_URL": "migration job only (checked separately)",
    "OUTGOING_WEBHOOKS_HTTPS_ONLY": "ProductionConfig pins it on",
    "OUTGOING_WEBHOOKS_ALLOWED_HOSTS": "ProductionConfig pins it empty (a local receiver in tests only)",
}
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY($|_)|DATABASE_.*URL|REDIS_URL|CONNECTION_STRING")


@cache
def parser() -> Parser:
    return Parser(Language(tree_sitter_bicep.language()))


@cache
def parse(path: Path) -> Node:
    text = path.read_text()
    if path.suffix == ".bicepparam":
        text = re.sub(r"^using\s+'[^']+'", "", text, flags=re.M)
        text = re.sub(r"^param\s+", "var ", text, flags=re.M)
    tree = parser().parse(text.encode())
    return tree.root_node


def errors(node: Node) -> list[str]:
    out = []
    if node.type == "ERROR" or node.is_missing:
        out.append(f"line {node.start_point[0] + 1}: {node.text[:60]!r}")
    for child in node.children:
        out.extend(errors(child))
    return out


def walk(node: Node):
    yield node
    for child in node.children:
        yield from walk(child)


def text(node: Node | None) -> str:
    return node.text.decode() if node is not None else ""


def string_value(node: Node | None) -> str | None:
    """A string literal's content, with interpolations kept as ${...}."""
    if node is None or node.type != "string":
        return None
    return text(node)[1:-1]


def declarations(root: Node, kind: str) -> dict[str, Node]:
    return {text(n.child_by_field_name("name") or _first(n, "identifier")): n for n in root.children if n.type == kind}


def _first(node: Node, type_: str) -> Node | None:
    return next((c for c in node.children if c.type == type_), None)


def module_body(decl: Node) -> Node:
    """A module's object, also when it is conditional (``= if (cond) { ... }``)."""
    return _first(decl, "object") or _first(_first(decl, "if_statement"), "object")


def props(obj: Node) -> dict[str, Node]:
    """An object literal's properties: key -> value node."""
    out = {}
    for p in obj.children:
        if p.type == "object_property":
            key, value = p.named_children[0], p.named_children[-1]
            out[string_value(key) if key.type == "string" else text(key)] = value
    return out


def objects(node: Node):
    return (n for n in walk(node) if n.type == "object")


def resources(root: Node) -> dict[str, tuple[str, Node]]:
    """symbolic name -> (type@version, body object)."""
    out = {}
    for name, decl in declarations(root, "resource_declaration").items():
        type_ = string_value(_first(decl, "string"))
        body = _first(decl, "object") or next(objects(_first(decl, "if_statement") or decl), None)
        out[name] = (type_, body)
    return out


def param_info(root: Node) -> dict[str, dict]:
    """Parameter name -> {required, default text, decorators text}."""
    out = {}
    previous = None
    for n in root.children:
        if n.type == "parameter_declaration":
            name = text(_first(n, "identifier"))
            has_default = any(c.type == "=" for c in n.children)
            out[name] = {
                "required": not has_default,
                "default": text(n.children[-1]) if has_default else None,
                "decorators": text(previous) if previous is not None and previous.type == "decorators" else "",
            }
        previous = n
    return out


def env_entries(root: Node) -> list[dict]:
    """Every {name: 'X', value|secretRef: ...} object in a file (container env lists)."""
    out = []
    for obj in objects(root):
        p = props(obj)
        if "name" in p and ("value" in p or "secretRef" in p) and set(p) <= {"name", "value", "secretRef"}:
            name = string_value(p["name"])
            if name and re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
                out.append(
                    {"name": name, "secretRef": string_value(p.get("secretRef")), "value": p.get("value"), "node": obj}
                )
    return out


def config_env_vars() -> set[str]:
    """Every environment variable app/config.py reads (os.environ.get / env_int / env_bool)."""
    tree = ast.parse((ROOT / "app" / "config.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in {"os.environ.get", "env_int", "env_bool", "os.getenv"} and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def enclosing_resource(node: Node) -> str | None:
    while node is not None:
        if node.type == "resource_declaration":
            return text(_first(node, "identifier"))
        node = node.parent
    return None


MAIN = BICEP / "main.bicep"
APPS = BICEP / "modules" / "apps.bicep"


# --------------------------------------------------------------------------- syntax


@pytest.mark.parametrize("path", [MAIN, *MODULES, *PARAM_FILES], ids=lambda p: p.name)
def test_every_bicep_file_parses_without_errors(path):
    root = parse(path)
    assert root.type == "infrastructure" and root.named_child_count > 0
    assert errors(root) == [], f"{path.name}: syntax errors"


# --------------------------------------------------------------------------- wiring


def test_every_module_gets_exactly_the_params_it_declares():
    root = parse(MAIN)
    modules = declarations(root, "module_declaration")
    assert {Path(string_value(_first(m, "string"))).name for m in modules.values()} == {p.name for p in MODULES}
    for name, decl in modules.items():
        target = BICEP / string_value(_first(decl, "string"))
        declared = param_info(parse(target))
        passed = set(props(props(module_body(decl))["params"]))
        assert passed <= set(declared), f"module {name} passes unknown params {passed - set(declared)}"
        missing = {p for p, info in declared.items() if info["required"]} - passed
        assert not missing, f"module {name} misses required params {missing}"


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_files_set_every_required_param_and_nothing_unknown(path):
    assert re.search(r"^using '\.\./main\.bicep'", path.read_text(), flags=re.M)
    main_params = param_info(parse(MAIN))
    given = set(declarations(parse(path), "variable_declaration"))
    assert given <= set(main_params), f"unknown params {given - set(main_params)}"
    missing = {p for p, info in main_params.items() if info["required"]} - given
    assert not missing, f"{path.name} leaves required params unset: {missing}"
    secure = {p for p, info in main_params.items() if "@secure()" in info["decorators"]}
    for name, decl in declarations(parse(path), "variable_declaration").items():
        if name in secure:  # secrets only ever come from the environment, never the file
            assert "readEnvironmentVariable(" in text(decl), f"{path.name}: {name} must not be a literal"


def test_per_environment_values():
    def values(path):
        return {k: text(v.children[-1]) for k, v in declarations(parse(path), "variable_declaration").items()}

    prod, staging = values(BICEP / "env" / "prod.bicepparam"), values(BICEP / "env" / "staging.bicepparam")
    assert prod["environmentName"] == "'prod'" and staging["environmentName"] == "'staging'"
    assert prod["postgresHighAvailability"] == "'ZoneRedundant'"
    assert prod["postgresGeoRedundantBackup"] == "'Enabled'"
    assert int(prod["postgresBackupRetentionDays"]) >= 30
    for v in (prod, staging):
        assert int(v["webMinReplicas"]) >= 1


# --------------------------------------------------------------------------- resources


def all_resources() -> dict[str, tuple[str, Node, Path]]:
    out = {}
    for path in [MAIN, *MODULES]:
        for name, (type_, body) in resources(parse(path)).items():
            out[f"{path.stem}.{name}"] = (type_, body, path)
    return out


def test_every_needed_azure_resource_is_declared():
    types = {t.split("@")[0] for t, _, _ in all_resources().values()}
    needed = {
        "Microsoft.App/managedEnvironments",
        "Microsoft.App/managedEnvironments/certificates",
        "Microsoft.App/containerApps",
        "Microsoft.App/jobs",
        "Microsoft.DBforPostgreSQL/flexibleServers",
        "Microsoft.DBforPostgreSQL/flexibleServers/databases",
        "Microsoft.Cache/redis",
        "Microsoft.KeyVault/vaults",
        "Microsoft.KeyVault/vaults/secrets",
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "Microsoft.Authorization/roleAssignments",
        "Microsoft.OperationalInsights/workspaces",
        "Microsoft.Insights/components",
        "Microsoft.Network/virtualNetworks",
        "Microsoft.Network/privateDnsZones",
        "Microsoft.ContainerRegistry/registries",
    }
    assert needed <= types, f"missing: {needed - types}"
    for t, _, path in all_resources().values():
        assert re.fullmatch(r"[\w.]+/[\w/]+@\d{4}-\d{2}-\d{2}(-preview)?", t), f"{path.name}: bad type {t}"


def apps_resources():
    return {name: body for name, (_, body) in resources(parse(APPS)).items()}


def test_web_worker_scheduler_and_migration_job():
    from app.config import Config
    from app.jobs import job

    res = apps_resources()
    src = APPS.read_text()
    # Every role runs the same image with the entry point's role as its argument.
    for name, role in (("web", "web"), ("worker", "worker"), ("scheduler", "scheduler"), ("migrate", "migrate")):
        assert f"args: [ '{role}' ]" in text(res[name]), name
        assert role in (ROOT / "docker" / "entrypoint.sh").read_text()

    web = props(props(res["web"])["properties"])
    scale = props(props(web["template"])["scale"])
    assert text(scale["minReplicas"]) == "webMinReplicas"
    assert "@minValue(1)" in param_info(parse(MAIN))["webMinReplicas"]["decorators"]
    assert "http:" in text(scale["rules"]) and "concurrentRequests" in text(scale["rules"])
    ingress = props(props(web["configuration"])["ingress"])
    assert text(ingress["external"]) == "true" and text(ingress["allowInsecure"]) == "false"
    assert "'*.${baseDomain}'" in text(ingress["customDomains"]) and "'app.${baseDomain}'" in text(
        ingress["customDomains"]
    )
    probes = text(props(props(web["template"])["containers"].named_children[0])["probes"])
    assert "/healthz" in probes and "/readyz" in probes

    # gunicorn's graceful timeout fits inside the platform's grace period.
    web_grace = int(re.search(r"var webGraceSeconds = (\d+)", src).group(1))
    assert "WEB_GRACEFUL_TIMEOUT', value: string(webGraceSeconds - 10)" in src and web_grace > 10

    # Worker: KEDA redis list-length rule on each RQ queue, TLS, grace period beyond the longest job.
    queues = re.search(r"var rqQueues = \[([^\]]*)\]", src).group(1)
    assert sorted(re.findall(r"'([\w-]+)'", queues)) == sorted(Config.RQ_QUEUES)
    worker_scale = text(props(props(props(res["worker"])["properties"])["template"])["scale"])
    assert "type: 'redis'" in worker_scale and "listName: 'rq:queue:${queue}'" in worker_scale
    assert "enableTLS: 'true'" in worker_scale and "triggerParameter: 'password'" in worker_scale
    longest_job = inspect.signature(job).parameters["timeout"].default
    assert int(re.search(r"var workerGraceSeconds = (\d+)", src).group(1)) > longest_job
    assert "terminationGracePeriodSeconds: workerGraceSeconds" in text(res["worker"])

    # Scheduler: exactly one replica.
    sched_scale = props(props(props(props(res["scheduler"])["properties"])["template"])["scale"])
    assert text(sched_scale["minReplicas"]) == "1" and text(sched_scale["maxReplicas"]) == "1"

    # Migration: a manually triggered Container Apps job.
    job_conf = props(props(props(res["migrate"])["properties"])["configuration"])
    assert string_value(job_conf["triggerType"]) == "Manual"


def test_postgres_private_access_backups_and_ha():
    _, body = resources(parse(BICEP / "modules" / "postgres.bicep"))["server"]
    p = props(props(body)["properties"])
    network = props(p["network"])
    assert {"delegatedSubnetResourceId", "privateDnsZoneArmResourceId"} <= set(network)
    assert string_value(network["publicNetworkAccess"]) == "Disabled"
    backup = props(p["backup"])
    assert text(backup["backupRetentionDays"]) == "backupRetentionDays"
    assert text(backup["geoRedundantBackup"]) == "geoRedundantBackup"
    assert text(props(p["highAvailability"])["mode"]) == "highAvailability"
    # BYPASSRLS for fieldday_definer needs 16+ on Flexible Server (docs/deployment.md).
    assert int(param_info(parse(BICEP / "modules" / "postgres.bicep"))["version"]["default"].strip("'")) >= 16
    ext = (BICEP / "modules" / "postgres.bicep").read_text()
    for extension in re.findall(r"CREATE EXTENSION IF NOT EXISTS (\w+)", _migrations_text()):
        assert extension.upper() in ext, f"extension {extension} not allow-listed in azure.extensions"


def _migrations_text() -> str:
    return "\n".join(p.read_text() for p in (ROOT / "migrations" / "versions").glob("*.py"))


def test_redis_is_tls_only():
    _, body = resources(parse(BICEP / "modules" / "redis.bicep"))["redis"]
    p = props(props(body)["properties"])
    assert text(p["enableNonSslPort"]) == "false"
    assert string_value(p["minimumTlsVersion"]) == "1.2"
    assert string_value(p["publicNetworkAccess"]) == "Disabled"
    assert "rediss://" in MAIN.read_text()


def test_key_vault_rbac_and_the_apps_identity_reads_secrets():
    res = resources(parse(BICEP / "modules" / "keyvault.bicep"))
    vault = props(props(res["vault"][1])["properties"])
    assert text(vault["enableRbacAuthorization"]) == "true" and text(vault["enablePurgeProtection"]) == "true"
    kv = (BICEP / "modules" / "keyvault.bicep").read_text()
    assert "4633458b-17de-408a-b874-0445c86b69e6" in kv  # Key Vault Secrets User
    assert "principalId: appsPrincipalId" in text(res["appsReadSecrets"][1])
    # Every app and the job run as the user-assigned identity and read secrets by Key Vault URL.
    for name, body in apps_resources().items():
        if name in {"web", "worker", "scheduler", "migrate"}:
            assert "'UserAssigned'" in text(body) and "identityId" in text(body)
    assert "keyVaultUrl: '${vaultUri}secrets/${name}', identity: identityId" in APPS.read_text()


# --------------------------------------------------------------------------- settings and secrets


def kv_secret_names() -> set[str]:
    keyvault = declarations(parse(MAIN), "module_declaration")["keyvault"]
    return set(props(props(props(module_body(keyvault))["params"])["secretValues"]))


def app_secret_names(var: str) -> set[str]:
    decl = declarations(parse(APPS), "variable_declaration")[var]
    return {string_value(n) for n in walk(decl) if n.type == "string" and n.parent.type == "array"}


def test_every_config_setting_is_declared_for_the_containers():
    declared = {e["name"] for e in env_entries(parse(APPS))}
    needed = config_env_vars()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "FIELDDAY_ENV"} <= needed | {"FIELDDAY_ENV"}
    missing = sorted(n for n in needed if n not in declared and n not in DEFAULT_IS_RIGHT)
    assert not missing, (
        f"app/config.py reads {missing}, but infra/bicep/modules/apps.bicep sets none of them: add each to "
        "commonEnv (a Key Vault secretRef if it is a secret), or to DEFAULT_IS_RIGHT in this test with the reason"
    )
    assert "FIELDDAY_ENV" in declared and "APPLICATIONINSIGHTS_CONNECTION_STRING" in declared


def test_every_secret_comes_from_key_vault():
    entries = env_entries(parse(APPS))
    kv = kv_secret_names()
    container_secrets = app_secret_names("appSecretNames") | app_secret_names("migrateSecretNames") | {"redis-password"}
    assert container_secrets <= kv, f"apps reference secrets Key Vault lacks: {container_secrets - kv}"
    for e in entries:
        if SECRET_NAME.search(e["name"]):
            assert e["secretRef"], f"{e['name']} must be a Key Vault secretRef, never a plain value"
        if e["secretRef"]:
            assert e["secretRef"] in container_secrets, f"{e['name']} -> unknown secret {e['secretRef']}"
    # The brief's list, by name.
    for name in (
        "secret-key",
        "database-url",
        "database-owner-url",
        "redis-url",
        "s3-access-key-id",
        "s3-secret-access-key",
        "stripe-secret-key",
        "stripe-connect-webhook-secret",
        "twilio-auth-token",
        "google-client-secret",
        "fernet-key",
    ):
        assert name in kv


def test_app_role_and_owner_role_are_separate_secrets_and_only_the_job_gets_the_owner():
    main = MAIN.read_text()
    assert re.search(r"'database-url': 'postgresql\+psycopg://fieldday_app:", main)
    assert re.search(r"'database-owner-url': 'postgresql\+psycopg://fieldday_owner:", main)
    holders = {enclosing_resource(e["node"]) for e in env_entries(parse(APPS)) if e["name"] == "DATABASE_OWNER_URL"}
    assert holders == {"migrate"}
    assert "database-owner-url" not in app_secret_names("appSecretNames")


def test_outputs_name_the_urls():
    outputs = declarations(parse(MAIN), "output_declaration")
    assert {"appUrl", "bookingSiteUrlPattern", "webDefaultUrl", "dnsRecords", "customDomainVerificationId"} <= set(
        outputs
    )
    assert "'https://app.${baseDomain}'" in text(outputs["appUrl"])


def test_pipeline_builds_and_runs_what_if():
    wf = (ROOT / ".github" / "workflows" / "deploy.yml").read_text()
    assert "az bicep build" in wf and "what-if" in wf
    assert "infra/bicep/env/${ENV_NAME}.bicepparam" in wf
    assert {p.stem for p in PARAM_FILES} == {"staging", "prod"} and "options: [ staging, prod ]" in wf
