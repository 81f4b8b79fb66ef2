"""infra/ against the code it deploys, and cheap checks of the Bicep's own structure.

Event Grid routes to the Functions with subscriptions generated from
infra/event-subscriptions.json, which must say what the trigger bindings of
handlers/function_app.py say; the web's subscription must reach the receiver with its key; the
storage account must hold every container the code writes with its lifecycle rule. There is
no Bicep compiler offline, so the structure checks (brackets, params, modules, outputs, the
parameters file) catch what a compiler would have caught first.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from django.urls import reverse

from handlers.bindings import read_bindings
from handlers.function_app import app as function_app
from services.blobs.store import CONTAINERS
from services.executions.sweeper import RETENTION
from tests.infra.bicep import BicepFile, Declaration, Span, infra_files, resources_of
from web.eventgrid.auth import KEY_HEADER

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
SUBSCRIPTIONS_FILE = INFRA / "event-subscriptions.json"
DEAD_LETTERS = "deadletters"
EVENT_SUBSCRIPTION = "Microsoft.EventGrid/topics/eventSubscriptions"

# Built-in role definitions (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
ROLES = {
    "EventGrid Data Sender": "d5a91429-5739-47e2-a06b-3470a27159e7",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "AcrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
}
MAIN_OUTPUTS = {
    "topicEndpoint",
    "webUrl",
    "functionAppName",
    "storageAccountName",
    "keyVaultName",
    "postgresFqdn",
}


@cache
def files() -> tuple[BicepFile, ...]:
    return tuple(infra_files(INFRA))


def file_named(name: str) -> BicepFile:
    return next(f for f in files() if f.path.relative_to(INFRA).as_posix() == name)


def one(type_: str, where: str = "") -> tuple[BicepFile, Declaration, Span]:
    found = [
        (f, d)
        for f, d in resources_of(list(files()), type_)
        if d.body is not None and where in d.body.text
    ]
    assert len(found) == 1, f"expected one {type_} ({where!r}) in infra/, found {len(found)}"
    file, resource = found[0]
    assert resource.body is not None
    return file, resource, resource.body


def value(span: Span | None, key: str) -> Span:
    assert span is not None
    found = span.find(key)
    assert found is not None, f"no {key} in {span!r}"
    return found


# -- Event Grid ----------------------------------------------------------------------------------


def declared_subscriptions() -> list[dict[str, object]]:
    subscriptions, _ = read_bindings(function_app)
    return [
        {
            "name": s.name,
            "subjectBeginsWith": s.subject_begins_with,
            "subjectEndsWith": s.subject_ends_with,
            "includedEventTypes": list(s.included_event_types),
        }
        for s in subscriptions
    ]


def test_the_subscriptions_file_says_what_the_bindings_say() -> None:
    expected = declared_subscriptions()
    written = json.loads(SUBSCRIPTIONS_FILE.read_text())["subscriptions"]
    by_name = {s["name"]: s for s in written}
    assert len(by_name) == len(written), "a function is listed twice"
    assert by_name == {s["name"]: s for s in expected}, (
        "infra/event-subscriptions.json disagrees with the Event Grid triggers of "
        "handlers/function_app.py; its subscriptions should read:\n"
        + json.dumps(expected, indent=2)
    )


def test_function_subscriptions_come_from_the_file_and_dead_letter() -> None:
    file, resource, body = one(EVENT_SUBSCRIPTION, "'AzureFunction'")
    loaded = re.search(r"(\w+)\s*=\s*loadJsonContent\('([^']+)'\)\.subscriptions", file.text)
    assert loaded, f"{file.path.name} does not load the subscriptions with loadJsonContent"
    variable, path = loaded.groups()
    assert (file.path.parent / path).resolve() == SUBSCRIPTIONS_FILE
    loop = re.match(rf"\[\s*for\s+(\w+)\s+in\s+{variable}\s*:", body.text)
    assert loop, f"{resource.name} does not loop over {variable}"
    item = loop.group(1)
    assert value(body, "resourceId").text == f"'${{functionAppId}}/functions/${{{item}.name}}'"
    filters = value(body, "filter").props()
    assert filters["subjectBeginsWith"].text == f"{item}.subjectBeginsWith"
    assert filters["subjectEndsWith"].text == f"{item}.subjectEndsWith"
    assert f"{item}.includedEventTypes" in filters["includedEventTypes"].text
    check_delivery(body)


def test_the_web_subscription_reaches_the_receiver_with_its_key() -> None:
    _, _, body = one(EVENT_SUBSCRIPTION, "'WebHook'")
    endpoint = value(body, "endpointUrl").text
    path = reverse("eventgrid-events")
    assert endpoint.startswith("'https://") and f"{path}?code=${{" in endpoint
    (mapping,) = value(body, "deliveryAttributeMappings").items()
    props = mapping.props()
    assert props["name"].literal() == KEY_HEADER
    assert props["type"].literal() == "Static"
    assert value(props["properties"], "isSecret").text == "true"
    key = value(props["properties"], "value").text
    assert body.file.params()[key].secure, f"the receiver key comes from {key}, not a secure param"
    # The same key in the URL, for the handshakes (which may come without the header).
    assert endpoint.endswith(f"?code=${{{key}}}'")
    # No type filter: the receiver hears every event of the topic.
    assert body.find("includedEventTypes") is None
    check_delivery(body)


def check_delivery(body: Span) -> None:
    assert value(body, "eventDeliverySchema").literal() == "CloudEventSchemaV1_0"
    retry = value(body, "retryPolicy").props()
    assert retry["maxDeliveryAttempts"].text == "30"
    assert retry["eventTimeToLiveInMinutes"].text == "1440"
    dead_letter = body.find("deadLetterWithResourceIdentity") or body.find("deadLetterDestination")
    assert dead_letter is not None, f"no dead-letter destination in {body!r}"
    assert value(dead_letter, "endpointType").literal() == "StorageBlob"
    container = value(dead_letter, "blobContainerName")
    assert container.literal() == DEAD_LETTERS or "deadLetterContainer" in container.text
    assert container_names() >= {DEAD_LETTERS}


def test_the_topic_takes_cloudevents() -> None:
    _, _, body = one("Microsoft.EventGrid/topics")
    assert value(body, "inputSchema").literal() == "CloudEventSchemaV1_0"


# -- storage -------------------------------------------------------------------------------------


def container_names() -> set[str]:
    """Containers of the execution storage account (storage.bicep), loops included."""
    storage = file_named("modules/storage.bicep")
    names = set()
    for resource in storage.resources("Microsoft.Storage/storageAccounts/blobServices/containers"):
        assert resource.body is not None
        loop = re.match(r"\[\s*for\s+\w+\s+in\s+(\[[^\]]*\])", resource.body.text)
        if loop:
            names |= set(re.findall(r"'([^']+)'", loop.group(1)))
        else:
            names.add(value(resource.body, "name").literal() or "")
    return names


def test_every_container_the_code_uses_exists_with_its_lifecycle_rule() -> None:
    assert set(CONTAINERS) <= container_names()
    storage = file_named("modules/storage.bicep")
    (policy,) = storage.resources("Microsoft.Storage/storageAccounts/managementPolicies")
    days = {}
    for rule in value(policy.body, "rules").items():
        definition = value(rule, "definition")
        (prefix,) = value(definition, "prefixMatch").items()
        delete = value(value(definition, "baseBlob"), "delete")
        days[prefix.literal()] = int(value(delete, "daysAfterModificationGreaterThan").text)
    assert days == {f"{c}/": RETENTION[c].days for c in CONTAINERS}


def test_storage_accounts_are_private() -> None:
    accounts = resources_of(list(files()), "Microsoft.Storage/storageAccounts")
    assert len(accounts) == 2  # the executions' files, the Functions host's own
    for file, account in accounts:
        assert account.body is not None
        where = f"{file.path.name}: {account.name}"
        assert value(account.body, "allowBlobPublicAccess").text == "false", where
        assert value(account.body, "allowSharedKeyAccess").text == "false", where
        assert value(account.body, "minimumTlsVersion").literal() == "TLS1_2", where


def test_the_web_image_listens_where_the_ingress_sends() -> None:
    dockerfile = (INFRA / "web.Dockerfile").read_text()
    (command,) = re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)
    args = json.loads(command)
    assert args[:2] == ["magictoolbox", "run"]
    host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    assert host == "0.0.0.0"
    web = file_named("modules/web.bicep")
    (target,) = [v for v in web.of("var") if v.name == "port"]
    assert target.body is not None and target.body.text.endswith(f": {port}")
    _, _, app = one("Microsoft.App/containerApps")
    assert value(app, "targetPort").text == "port"


# -- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [f.path.relative_to(INFRA).as_posix() for f in files()])
def test_brackets_balance(name: str) -> None:
    assert file_named(name).unbalanced() == []


@pytest.mark.parametrize("name", [f.path.relative_to(INFRA).as_posix() for f in files()])
def test_every_param_is_used(name: str) -> None:
    file = file_named(name)
    unused = [
        param
        for param in file.params()
        if len(re.findall(rf"(?<![\w.]){param}\b", file.masked)) < 2  # the declaration + a use
    ]
    assert not unused, f"{name}: unused params {unused}"


def test_modules_exist_and_get_their_params() -> None:
    for file in files():
        for module in file.of("module"):
            path = file.path.parent / module.detail
            assert path.is_file(), f"{file.path.name}: module {module.name} → missing {path}"
            assert module.body is not None
            given = set(value(module.body, "params").props())
            declared = BicepFile(path).params()
            unknown = given - set(declared)
            missing = {p.name for p in declared.values() if not p.has_default} - given
            assert not unknown, f"{module.name}: {path.name} has no params {sorted(unknown)}"
            assert not missing, f"{module.name}: {path.name} needs {sorted(missing)}"


def test_module_outputs_exist() -> None:
    for file in files():
        modules = {m.name: file.path.parent / m.detail for m in file.of("module")}
        for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", file.masked):
            assert symbol in modules, f"{file.path.name}: {symbol} is not a module"
            outputs = {o.name for o in BicepFile(modules[symbol]).of("output")}
            assert output in outputs, f"{file.path.name}: {symbol} has no output {output}"


def test_main_outputs_what_operators_need() -> None:
    outputs = {o.name for o in file_named("main.bicep").of("output")}
    assert outputs >= MAIN_OUTPUTS


def test_the_parameters_file_fits_main() -> None:
    document = json.loads((INFRA / "main.parameters.json").read_text())
    given = document["parameters"]
    params = file_named("main.bicep").params()
    assert set(given) <= set(params), f"unknown parameters: {sorted(set(given) - set(params))}"
    required = {p.name for p in params.values() if not p.has_default}
    assert required <= set(given), f"the file lacks {sorted(required - set(given))}"
    for name, param in params.items():
        if param.secure and name in given:
            assert "reference" in given[name], f"{name} is a secret: a Key Vault reference"


def test_roles_are_the_documented_built_in_ones() -> None:
    text = "\n".join(f.text for f in files())
    used = set(
        re.findall(r"'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})'", text)
    )
    assert used == set(ROLES.values()), f"unknown role ids {sorted(used - set(ROLES.values()))}"
