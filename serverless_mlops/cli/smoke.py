"""``mlops smoke``: the post-deploy check a pipeline runs against a stage (or a person against any endpoint).

It finds the API (the stack's ``ApiUrl`` output, or ``--api-url``), signs every request with SigV4 (service
``execute-api``, the session's credentials and region: what an IAM-authorized HTTP API wants) and checks, in order:
live, ready, the OpenAPI document, one prediction per served model with the typical row ``mlops local up`` prints
(:func:`serverless_mlops.cli.serve.typical_row`), that an invalid payload is refused with a 4xx, and, when the drift
function is known, that it runs on an empty window. Each check that passes prints one line; the first that fails is
one ``error:`` line (the check, the URL, the status, the error code of the JSON body) and exit status 1.

Which models are served: ``--model``, else the inference function's ``MLOPS_MODELS`` (with ``--stack``), else every
model in the registry. The drift function: ``--drift-function``, else the stack's function whose handler is the drift
check's (found with ListStackResources, since the stack has no output for it), else the check is skipped and says so.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer

from serverless_mlops.cli.common import state
from serverless_mlops.errors import MlopsError, NotFoundError
from serverless_mlops.settings import Settings

# An empty window: long before any deployment, so the drift check finds no captured rows and answers insufficient_data
# (never an alert).
EMPTY_WINDOW = {"start": "2000-01-01T00:00:00Z", "end": "2000-01-01T00:01:00Z"}
INVALID_PAYLOAD = {"instances": "not a list of rows"}
DRIFT_INVOKE_SECONDS = 60  # a cold start plus a check (the registry, the profile, the window's listing): longer than a request


class SmokeFailure(MlopsError):
    """A check failed: the message names the check, and for an HTTP answer the URL, status and error code."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"smoke check {check} failed: {message}")


@dataclass
class Target:
    """What the checks run against: the API, the settings that reach the registry, and what the stack tells."""

    api_url: str
    settings: Settings
    models: list[str] = field(default_factory=list)  # empty: every model in the registry
    drift_function: str | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON document, or the text when the body is not JSON


class SignedClient:
    """HTTP requests signed with SigV4 for ``execute-api``, each bounded by ``timeout`` seconds."""

    def __init__(self, region: str, timeout: float, credentials: Any = None) -> None:
        import boto3

        found = credentials or boto3.session.Session().get_credentials()
        if found is None:
            raise MlopsError("no AWS credentials to sign the requests with (set AWS_PROFILE or the AWS_* variables)")
        self.credentials = found.get_frozen_credentials() if hasattr(found, "get_frozen_credentials") else found
        self.region = region
        self.timeout = timeout

    def request(self, check: str, method: str, url: str, body: Any = None) -> Answer:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        data = None if body is None else json.dumps(body).encode()
        headers = {"accept": "application/json"} | ({"content-type": "application/json"} if data is not None else {})
        signed = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.region).add_auth(signed)
        request = urllib.request.Request(url, data=data, headers=dict(signed.headers.items()), method=method)  # noqa: S310 - http(s) only, checked
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - http(s) only, checked
                return Answer(response.status, _parse(response.read()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _parse(exc.read()))
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out (urllib's URLError is an OSError)
            reason = getattr(exc, "reason", exc)
            raise SmokeFailure(check, f"{method} {url}: no answer within {self.timeout:g} s ({reason})") from exc


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _code(body: Any) -> str:
    """The error code of an answer's JSON body (this API's ``error``, API Gateway's ``message``), or its text."""
    if isinstance(body, dict):
        for key in ("error", "message", "Message"):
            if body.get(key):
                return f"{key} {str(body[key])[:200]!r}"
    text = " ".join((body if isinstance(body, str) else json.dumps(body)).split())
    return f"body {text[:200]!r}" if text else "empty body"


def expect(check: str, method: str, url: str, answer: Answer, wanted: range = range(200, 300)) -> Any:
    if answer.status not in wanted:
        raise SmokeFailure(check, f"{method} {url} answered {answer.status} ({_code(answer.body)})")
    return answer.body


# -- the stack --------------------------------------------------------------------------------------------------------


def stack_target(stack: str, settings: Settings, models: list[str], drift_function: str | None) -> Target:
    """The target a CloudFormation stack describes: its outputs (ApiUrl, the registry table and the artifact bucket)
    and, from its resources, the inference function's served models and the drift function."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.aws import client
    from serverless_mlops.local.environment import HANDLERS

    cloudformation = client("cloudformation", settings)
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except (BotoCoreError, ClientError) as exc:
        raise SmokeFailure("stack", f"cannot describe stack {stack}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise SmokeFailure("stack", f"stack {stack} has no ApiUrl output (outputs: {', '.join(sorted(outputs)) or 'none'})")
    settings = settings.model_copy(
        update={"table": outputs.get("RegistryTableName", settings.table), "bucket": outputs.get("ArtifactBucketName", settings.bucket)}
    )
    functions: dict[str, dict[str, Any]] = {}  # handler → configuration
    lambda_ = client("lambda", settings)
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Lambda::Function" and resource.get("PhysicalResourceId"):
                configuration = lambda_.get_function_configuration(FunctionName=resource["PhysicalResourceId"])
                functions[configuration.get("Handler", "")] = configuration
    if not models and (inference := functions.get(HANDLERS["inference"])):
        served = (inference.get("Environment") or {}).get("Variables", {}).get("MLOPS_MODELS", "")
        models = [name for name in served.split(",") if name]
    if drift_function is None and (drift := functions.get(HANDLERS["drift_check"])):
        drift_function = drift["FunctionName"]
    if not outputs["ApiUrl"].startswith(("http://", "https://")):
        raise SmokeFailure("stack", f"stack {stack}'s ApiUrl output {outputs['ApiUrl']!r} is not an http(s) URL")
    return Target(outputs["ApiUrl"].rstrip("/"), settings, models, drift_function)


# -- the checks -------------------------------------------------------------------------------------------------------


def run_checks(target: Target, http: SignedClient, report: Any) -> None:
    """Run every check in order; ``report(line)`` hears each one that passed; the first failure raises SmokeFailure."""
    base = target.api_url.rstrip("/")
    url = f"{base}/v2/health/live"
    expect("live", "GET", url, http.request("live", "GET", url))
    report(f"✓ live: GET {url} 200")
    url = f"{base}/v2/health/ready"
    answer = http.request("ready", "GET", url)
    if answer.status != 200:
        raise SmokeFailure("ready", f"GET {url} answered {answer.status} ({_code(answer.body)}){not_ready(target, http, base)}")
    report(f"✓ ready: GET {url} 200")
    url = f"{base}/openapi.json"
    document = expect("openapi", "GET", url, http.request("openapi", "GET", url))
    if not (isinstance(document, dict) and str(document.get("openapi", "")).startswith("3.") and document.get("paths")):
        raise SmokeFailure("openapi", f"GET {url} answered 200 but not an OpenAPI 3 document with paths")
    report(f"✓ openapi: GET {url} OpenAPI {document['openapi']}, {len(document['paths'])} paths")
    models = served_models(target)
    for name in models:
        report(predict(target, http, base, name))
    url = f"{base}/v1/models/{models[0]}/predict"
    answer = http.request("invalid-payload", "POST", url, INVALID_PAYLOAD)
    expect("invalid-payload", "POST", url, answer, wanted=range(400, 500))
    report(f"✓ invalid-payload: POST {url} refused with {answer.status} ({_code(answer.body)})")
    report(invoke_drift(target, models[0]))


def not_ready(target: Target, http: SignedClient, base: str) -> str:
    """Which served model keeps the endpoint from being ready (it is ready when every served model loads): the first
    whose ``/v2/models/{name}/ready`` is not a 200, as a clause for the failure line."""
    try:
        models = served_models(target)
    except MlopsError:
        return ""
    for name in models:
        url = f"{base}/v2/models/{name}/ready"
        answer = http.request("ready", "GET", url)
        if answer.status != 200:
            return f"; model {name} is not ready: GET {url} answered {answer.status} ({_code(answer.body)})"
    return ""


def served_models(target: Target) -> list[str]:
    if target.models:
        return list(dict.fromkeys(target.models))
    from serverless_mlops.store.lifecycle import Backends

    names = list(Backends.from_settings(target.settings).registry.list_models(page_size=50).items)
    if not names:
        raise SmokeFailure("predict", f"the registry (table {target.settings.table}) has no model to predict with (or pass --model)")
    return names


def predict(target: Target, http: SignedClient, base: str, name: str) -> str:
    """One prediction with ``name``'s production version and its profile's typical row. The API's metadata comes
    first: a model the endpoint serves with nothing in production fails here, with the API's own answer."""
    from serverless_mlops.cli.serve import typical_row
    from serverless_mlops.store.lifecycle import Backends
    from serverless_mlops.store.registry import PRODUCTION

    check = f"predict {name}"
    url = f"{base}/v2/models/{name}"
    metadata = expect(check, "GET", url, http.request(check, "GET", url))
    backends = Backends.from_settings(target.settings)
    try:
        entry = backends.registry.resolve(name, PRODUCTION)
    except NotFoundError as exc:
        raise SmokeFailure(
            check, f"the API serves {name} (versions {metadata.get('versions')}) but the registry has no production version: {exc}"
        ) from exc
    row = typical_row(backends, entry)
    url = f"{base}/v1/models/{name}/predict"
    answer = expect(check, "POST", url, http.request(check, "POST", url, {"instances": [row]}))
    predictions = answer.get("predictions") if isinstance(answer, dict) else None
    if not isinstance(predictions, list) or len(predictions) != 1:
        raise SmokeFailure(check, f"POST {url} answered 200 without one prediction: {json.dumps(answer)[:200]}")
    return f"✓ {check}: POST {url} v{entry.version} → {json.dumps(predictions[0])[:80]}"


def invoke_drift(target: Target, model: str) -> str:
    """The drift function on an empty window: it must run (no function error) and answer a status."""
    from botocore.exceptions import BotoCoreError, ClientError

    from serverless_mlops.aws import client

    if target.drift_function is None:
        return "- drift: skipped (no drift function: pass --drift-function, or --stack to find it among the stack's resources)"
    name = target.drift_function
    event = {"model": model, "window": EMPTY_WINDOW}
    try:
        # one attempt whose read waits DRIFT_INVOKE_SECONDS (a budget's read timeout is half of it)
        answer = client("lambda", target.settings, budget_ms=2000 * DRIFT_INVOKE_SECONDS).invoke(
            FunctionName=name, Payload=json.dumps(event).encode()
        )
        result = _parse(answer["Payload"].read())
    except (BotoCoreError, ClientError) as exc:
        raise SmokeFailure("drift", f"invoke {name}: {exc}") from exc
    if answer.get("FunctionError") or not isinstance(result, dict) or "status" not in result:
        raise SmokeFailure("drift", f"invoke {name} on an empty window: {answer.get('FunctionError') or 'no status'} ({_code(result)})")
    return f"✓ drift: invoked {name} for {model} on an empty window: {result['status']}"


# -- the command ------------------------------------------------------------------------------------------------------


def smoke(
    stack: Annotated[str | None, typer.Option("--stack", help="a deployed stack: its ApiUrl output, registry and functions")] = None,
    api_url: Annotated[str | None, typer.Option("--api-url", help="the API's URL (instead of --stack)")] = None,
    models: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="predict with this model (repeatable; default: the served models)")
    ] = None,
    drift_function: Annotated[
        str | None, typer.Option("--drift-function", help="the drift function's name (default: found in --stack's resources)")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, max=120, help="seconds each HTTP request may take")] = 10.0,
) -> None:
    """Check a deployed API: live, ready, OpenAPI, one prediction per served model, a 4xx for an invalid payload, the
    drift function on an empty window. One line per check passed; the first failure is one line and exit 1."""
    if (stack is None) == (api_url is None):
        raise MlopsError("pass either --stack NAME or --api-url URL")
    if api_url is not None and not api_url.startswith(("http://", "https://")):
        raise MlopsError(f"--api-url {api_url!r} is not an http(s) URL")
    settings = state.settings()
    names = list(models or [])
    if stack is not None:
        target = stack_target(stack, settings, names, drift_function)
    else:
        target = Target(str(api_url).rstrip("/"), settings, names, drift_function)
    run_checks(target, SignedClient(settings.region, timeout), _report)


def _report(line: str) -> None:
    """One line per check, never wrapped (a log keeps it whole); nothing under --json."""
    if not state.json:
        typer.echo(line)


def register_commands(app: typer.Typer) -> None:
    app.command()(smoke)
