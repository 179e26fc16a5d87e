"""``make demo``: the whole loop on one machine, with no AWS account and no docker.

The stack the CDK app synthesizes runs locally (:func:`serverless_mlops.local.environment.local_environment`: a moto server
on 127.0.0.1, the template's resources, the Lambda functions in-process, the HTTP API), and the tour uses it only as
a user would — HTTP for predictions, the AWS APIs for the rest, and the ``mlops`` CLI for the rollback:

1. train the deployed example specs from what ``cdk deploy`` published, register and promote them;
2. predict over HTTP;
3. send drifted traffic (every feature of breast-cancer read one standard deviation high, as after a
   recalibrated instrument), let its labels arrive as feedback, fire the drift schedule, and read the alert the
   SNS topic delivers to an SQS queue, and the HTML report;
4. report the true labels of part of the drifted traffic by prediction id (``POST /v1/models/{name}/labels``), fire the
   quality schedule, and compare realized with estimated (CBPE) accuracy; the quality alert arrives in the inbox;
5. follow the retraining workflow the drift alert started, to a promotion;
6. see the new version serve, roll back with ``mlops rollback``, see the old version serve again;
7. release the retrained version as a canary (the release workflow, docs/releasing.md): traffic flows, its guard
   metrics pass, it is promoted;
8. release a deliberately broken candidate (its probabilities doubled, registered through the normal path): its
   invalid outputs breach the guards and the workflow rolls it back by itself.

:func:`run_tour` is the tour on a running environment and returns what each step observed (the end-to-end test
asserts on it); :func:`run_demo` adds the template, the environment and the summary table. What the tour does through
the ``mlops`` CLI comes in as a :class:`TourCli`: the CLI sits above ``local/`` and passes it in (``mlops demo``), so
nothing here imports the CLI.
"""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from serverless_mlops.local.demo_release import release_broken, release_canary, show_notices
from serverless_mlops.local.environment import LocalEnvironment, LocalInfo, fire_schedules, receive_alerts, seed_models
from serverless_mlops.local.tour import Served, StepOutcome, TourCli, TourError, TourResult

DRIFTING_MODEL = "breast-cancer"
DRIFTED_ROWS = 1000  # the inference environment's capture buffer writes to S3 every 1,000 rows (or 60 s)
ROWS_PER_REQUEST = 100
LABELLED_ROWS = 300  # the drifted rows whose outcome is known by the time the schedule fires
QUALITY_LABELS = 300  # the drifted rows whose label is reported by prediction id (at least the spec's quality.min_labels)
SHIFT_STDS = 1.0
SEED = 7


class _Tour:
    def __init__(self, env: LocalEnvironment, cli: TourCli, console: Console, out_dir: Path) -> None:
        self.env = env
        self.cli = cli
        self.info: LocalInfo = env.info
        self.console = console
        self.out_dir = out_dir
        self.result = TourResult()
        self._specs: dict[str, Any] = {}
        self._frames: dict[str, Any] = {}
        self._drifted: tuple[list[str], list[Any]] = ([], [])  # the drifted rows' prediction ids and true labels
        from serverless_mlops.store.lifecycle import Backends

        self.backends = Backends.from_settings(self.info.settings)

    # -- helpers --

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    @contextmanager
    def step(self, number: int, title: str) -> Iterator[list[str]]:
        self.say(f"\n[bold]{number}. {title}[/bold]")
        outcome: list[str] = []
        started = time.perf_counter()
        yield outcome
        self.result.steps.append(StepOutcome(number, title, "; ".join(outcome), time.perf_counter() - started))

    def spec(self, model: str) -> Any:
        """The spec the deployment published (read once: the tour does not change it)."""
        from serverless_mlops.aws import client
        from serverless_mlops.retraining.specs import load_published_spec

        if model not in self._specs:
            self._specs[model] = load_published_spec(model, client("s3", self.info.settings), self.info.bucket)
        return self._specs[model]

    def frame(self, model: str) -> Any:
        """The spec's training data (read once)."""
        from serverless_mlops.model.data import load_dataset

        if model not in self._frames:
            self._frames[model] = load_dataset(self.spec(model), self.info.settings).frame
        return self._frames[model]

    def predict(self, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """POST /v1/models/{model}/predict to the local HTTP API; a non-200 answer is a TourError naming it."""
        request = urllib.request.Request(  # noqa: S310 - the local API's own http://127.0.0.1 URL
            f"{self.info.api_url}/v1/models/{model}/predict",
            data=json.dumps({"instances": rows}).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            body = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
            raise TourError(f"POST /v1/models/{model}/predict answered {exc.code}: {body}") from exc

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body to the local HTTP API; a non-2xx answer is a TourError naming it."""
        request = urllib.request.Request(  # noqa: S310 - the local API's own http://127.0.0.1 URL
            f"{self.info.api_url}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - 127.0.0.1
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            text = " ".join(exc.read().decode("utf-8", "replace").split())[:300]
            raise TourError(f"POST {path} answered {exc.code}: {text}") from exc

    def served_by(self, model: str, version: int, rows: list[dict[str, Any]], timeout: float) -> tuple[dict[str, Any], float]:
        """Predict until ``version`` answers (a warm environment re-reads the alias every MLOPS_REFRESH_SECONDS)."""
        started = time.perf_counter()
        while True:
            answer = self.predict(model, rows)
            waited = time.perf_counter() - started
            if answer["version"] == version:
                return answer, waited
            if waited > timeout:
                raise TourError(f"{model}: still served by version {answer['version']} after {waited:.0f} s, expected version {version}")
            time.sleep(0.25)

    def refresh_seconds(self) -> float:
        from serverless_mlops.aws import client

        config = client("lambda", self.info.settings).get_function_configuration(FunctionName=self.info.functions["inference"])
        return float(config.get("Environment", {}).get("Variables", {}).get("MLOPS_REFRESH_SECONDS", 30))

    @staticmethod
    def rows(frame: Any, spec: Any) -> list[dict[str, Any]]:
        return list(frame[[f.name for f in spec.features]].to_dict("records"))  # Python scalars, JSON-ready

    # -- the steps --

    def train_and_promote(self) -> None:
        with self.step(1, "train, register and promote the deployed example models") as outcome:
            self.say(f"   specs published by the deployment: s3://{self.info.bucket}/specs/ ({', '.join(self.info.models)})")
            self.result.seeded = seed_models(self.info.settings, self.info.models, by="demo", reason="first model")
            for seeded in self.result.seeded:
                metric = f"{seeded.metric}={seeded.value:.3f}"
                self.say(f"   {seeded.model:<14} version {seeded.version} → production   {metric}   {seeded.seconds:.1f} s")
            outcome.append(", ".join(f"{s.model} v{s.version}" for s in self.result.seeded) + " in production")

    def predict_over_http(self) -> None:
        with self.step(2, "predict over HTTP") as outcome:
            self.say(f"   the HTTP API (mlops serve's server in front of the inference function): {self.info.api_url}")
            served: list[Served] = []
            for model in self.info.models:
                spec = self.spec(model)
                sample = self.frame(model).sample(3, random_state=SEED)
                answer = self.predict(model, self.rows(sample, spec))
                shown = [round(p, 1) if isinstance(p, float) else p for p in answer["predictions"]]
                actual = sample[spec.target].tolist()
                served.append(Served(model, answer["version"], answer["predictions"], actual, answer.get("probabilities")))
                self.say(f"   POST /v1/models/{model}/predict  3 rows → version {answer['version']}: {shown}  (actual {actual})")
            self.result.served["initial"] = served
            outcome.append(", ".join(f"{s.model} ← v{s.version}" for s in served))

    def drift(self) -> None:
        import pandas as pd

        model = DRIFTING_MODEL
        with self.step(3, f"drifted traffic to {model}, the drift schedule fires, the alert arrives") as outcome:
            spec = self.spec(model)
            base = self.frame(model)
            names = [f.name for f in spec.features]
            drifted = base.sample(DRIFTED_ROWS, replace=True, random_state=SEED).reset_index(drop=True)
            drifted[names] = drifted[names] + SHIFT_STDS * base[names].std()
            versions = set()
            for start in range(0, DRIFTED_ROWS, ROWS_PER_REQUEST):
                answer = self.predict(model, self.rows(drifted.iloc[start : start + ROWS_PER_REQUEST], spec))
                versions.add(answer["version"])
                self._drifted[0].extend(answer.get("ids", []))
            self._drifted[1].extend(drifted[spec.target].tolist())
            self.result.served["drifted"] = [Served(model, v, []) for v in sorted(versions)]
            self.say(
                f"   {DRIFTED_ROWS} rows in {DRIFTED_ROWS // ROWS_PER_REQUEST} requests, every feature {SHIFT_STDS:g} std high"
                f" (a recalibrated instrument) → served by version {', '.join(map(str, sorted(versions)))};"
                " the capture buffer wrote them to S3"
            )
            labelled = drifted.head(LABELLED_ROWS)[[*names, spec.target]]
            key = f"feedback/{model}/{datetime.now(UTC):%Y%m%dT%H%M%S}-labelled.csv"
            buffer = io.StringIO()
            pd.DataFrame(labelled).to_csv(buffer, index=False)
            from serverless_mlops.aws import client

            client("s3", self.info.settings).put_object(Bucket=self.info.bucket, Key=key, Body=buffer.getvalue().encode())
            self.say(f"   the outcomes of {LABELLED_ROWS} of them arrive as feedback: s3://{self.info.bucket}/{key}")

            fired = fire_schedules(self.info, model, function="drift_check")
            result = fired[0].result
            if fired[0].errored or not isinstance(result, dict):
                raise TourError(f"the drift check of {model} failed: {result}")
            self.result.drift = result
            self.say(
                f"   schedule fired (the local stand-in for EventBridge: {fired[0].target.expression}) → drift function"
                f" {fired[0].seconds:.1f} s: {result['status']}, {len(result['drifted_features'])} drifted features"
                f" ({result['drifted_share']:.0%}) in {result['rows']} rows"
            )
            self.result.alerts = receive_alerts(self.info, wait_seconds=10)
            drift_alerts = [a for a in self.result.alerts if a.subject.startswith("Drift:")]
            if not drift_alerts:
                raise TourError(f"no drift alert reached the inbox {self.info.alerts_queue_url}; the check said {result}")
            alert = drift_alerts[0]
            message = alert.message if isinstance(alert.message, dict) else {}
            top = ", ".join(f["feature"] for f in message.get("drifted_features", [])[:3])
            self.say(f"   alert in the SQS queue subscribed to the topic: [bold]{escape(alert.subject)}[/bold]")
            self.say(f"      severity {message.get('severity')}, drifted share {message.get('drifted_share')}, e.g. {escape(top)}, …")
            self.result.report_html = self.download_report(result["report"]["html"])  # an alert comes after its report
            self.say(f"   HTML report: {self.result.report_html}  (in S3: {message.get('report')})")
            drifted_count = f"{len(result['drifted_features'])}/{len(spec.features)}"
            outcome.append(f'{result["status"]}: {drifted_count} features; alert "{alert.subject}"')

    def download_report(self, html_uri: str) -> Path:
        from serverless_mlops.aws import client

        bucket, _, key = html_uri.removeprefix("s3://").partition("/")
        body = client("s3", self.info.settings).get_object(Bucket=bucket, Key=key)["Body"].read()
        path = self.out_dir / f"drift-report-{DRIFTING_MODEL}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return path.resolve()

    def quality(self) -> None:
        model = DRIFTING_MODEL
        with self.step(4, "labels for part of the drifted traffic arrive; the quality check: realized vs estimated") as outcome:
            ids, truth = self._drifted
            if len(ids) < QUALITY_LABELS:
                raise TourError(f"the predict answers returned {len(ids)} prediction ids for {len(truth)} rows")
            labels = [{"id": pid, "label": label} for pid, label in zip(ids[:QUALITY_LABELS], truth[:QUALITY_LABELS], strict=True)]
            answer = self.post(f"/v1/models/{model}/labels", {"labels": labels})
            self.say(
                f"   POST /v1/models/{model}/labels: {answer.get('received')} labels of the drifted rows, named by the ids the"
                " predict answers returned"
            )
            fired = fire_schedules(self.info, model, function="quality_check")
            result = fired[0].result
            if fired[0].errored or not isinstance(result, dict):
                raise TourError(f"the quality check of {model} failed: {result}")
            self.result.quality = result
            served = [v for v in result["versions"] if v["labelled"]]
            if not served:
                raise TourError(f"the quality check joined no label to a prediction: {result}")
            version = served[0]
            realized, estimated = version["realized"].get("accuracy"), version["estimated"].get("accuracy")
            self.say(
                f"   quality function {fired[0].seconds:.1f} s: version {version['version']}, {version['labelled']} of"
                f" {version['predictions']} predictions labelled ({version['coverage']:.0%})"
            )
            shown = "not estimated" if estimated is None else f"{estimated:.3f}"
            self.say(f"   accuracy realized (labels) {realized:.3f}, estimated before labels (CBPE) {shown}")
            if estimated is not None and abs(estimated - realized) > 0.03:
                self.say(
                    "   the estimate is off: CBPE holds while only the inputs move; these labels say the same inputs now mean"
                    " other outcomes, which only labels can tell"
                )
            notices = receive_alerts(self.info, wait_seconds=10 if result["status"] == "breach" else 0)
            self.result.alerts.extend(notices)
            quality_alerts = [a for a in notices if a.attributes.get("kind") == "quality" or a.subject.startswith("Quality:")]
            if result["status"] == "breach" and not quality_alerts:
                raise TourError(f"no quality alert reached the inbox {self.info.alerts_queue_url}; the check said {result['status']}")
            for alert in quality_alerts:
                self.say(f"   alert in the inbox: [bold]{escape(alert.subject)}[/bold]")
            if result.get("report"):
                self.say(f"   report: {result['report']['html']}")
            estimate = "" if estimated is None else f", estimated {estimated:.3f}"
            outcome.append(
                f"{result['status']}: accuracy {realized:.3f} realized{estimate}"
                + (f'; alert "{quality_alerts[0].subject}"' if quality_alerts else "")
            )

    def retrain(self) -> None:
        from serverless_mlops.aws import client

        with self.step(5, "the alert started the retraining workflow") as outcome:
            execution = self.result.drift.get("retraining_execution")
            if not execution:
                raise TourError(f"the drift check started no retraining: {self.result.drift}")
            self.say(f"   execution {execution.rsplit(':', 1)[-1]} (Step Functions on moto, the template's definition)")
            followed = self.cli.follow(client("stepfunctions", self.info.settings), execution, lambda line: self.say(f"   {line}"))
            self.result.workflow_states = [s.name for s in followed.steps]
            self.result.workflow_terminal = followed.terminal
            self.result.workflow_output = followed.output
            self.say(f"   {self.cli.outcome_line(followed)}")
            if followed.outcome != "promoted":
                raise TourError(f"the retraining of {DRIFTING_MODEL} ended {followed.terminal} ({followed.status}), not Promoted")
            promotion = followed.output.get("promotion") or {}
            outcome.append(f"{followed.terminal}: v{promotion.get('from_version')} → v{promotion.get('to_version')}")
            show_notices(self)

    def serve_and_roll_back(self) -> None:
        model = DRIFTING_MODEL
        with self.step(6, "the new version serves; roll back with mlops rollback") as outcome:
            spec = self.spec(model)
            sample = self.frame(model).sample(3, random_state=SEED)
            rows = self.rows(sample, spec)
            promotion = self.result.workflow_output.get("promotion") or {}
            new, old = int(promotion["to_version"]), int(promotion["from_version"])
            refresh = self.refresh_seconds()
            answer, waited = self.served_by(model, new, rows, timeout=refresh + 10)
            actual = sample[spec.target].tolist()
            self.result.served["retrained"] = [Served(model, answer["version"], answer["predictions"], actual, answer.get("probabilities"))]
            self.result.refresh_waits["promotion"] = waited
            self.say(
                f"   POST /v1/models/{model}/predict → version {answer['version']} (after {waited:.1f} s: the endpoint re-reads"
                f" the alias every {refresh:g} s)"
            )
            self.run_cli(["rollback", model, "--reason", "demo: back to the previous version"])
            answer, waited = self.served_by(model, old, rows, timeout=refresh + 10)
            rolled_back = Served(model, answer["version"], answer["predictions"], actual, answer.get("probabilities"))
            self.result.served["rolled_back"] = [rolled_back]
            self.result.refresh_waits["rollback"] = waited
            self.say(f"   POST /v1/models/{model}/predict → version {answer['version']} (after {waited:.1f} s)")
            alias = self.backends.registry.get_alias(model, "production")
            self.result.history = [change.model_dump(mode="json") for change in alias.history]
            self.say(f"   the production alias's history (mlops history {model}):")
            for change in alias.history:
                move = f"{change.from_version or '–'} → {change.to_version}"
                reason = change.reason if len(change.reason) <= 90 else change.reason[:89] + "…"
                self.say(f"      rev {change.revision}  {change.action:<8} {move:<6} by {escape(change.by):<44} {escape(reason)}")
            outcome.append(f"v{new} served, rolled back: v{old} served again (alias revision {alias.revision})")

    def run_cli(self, args: list[str]) -> None:
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        self.say(f"   [dim]$[/dim] mlops {escape(shown)}")
        global_options = ["--endpoint-url", self.info.endpoint_url, "--bucket", self.info.bucket, "--table", self.info.table]
        printed, errors = io.StringIO(), io.StringIO()
        with redirect_stdout(printed), redirect_stderr(errors):  # shown through the tour's console, like the rest
            code = self.cli.run([*global_options, *args])
        for line in (printed.getvalue() + errors.getvalue()).rstrip().splitlines():
            self.console.print(f"   {escape(line)}", highlight=False)
        if code != 0:
            raise TourError(f"mlops {shown} exited {code}: {errors.getvalue().strip()}")


def run_tour(env: LocalEnvironment, *, cli: TourCli, console: Console | None = None, out_dir: Path = Path("build/demo")) -> TourResult:
    """The eight steps of the module docstring on a running environment; raises TourError when a step does not see
    what it should."""
    tour = _Tour(env, cli, console or Console(highlight=False, soft_wrap=True), out_dir)
    tour.result.endpoint_url, tour.result.api_url = env.info.endpoint_url, env.info.api_url
    tour.train_and_promote()
    tour.predict_over_http()
    tour.drift()
    tour.quality()
    tour.retrain()
    tour.serve_and_roll_back()
    release_canary(tour, DRIFTING_MODEL, seed=SEED)
    release_broken(tour, DRIFTING_MODEL, seed=SEED)
    return tour.result


def summary_table(result: TourResult, total_seconds: float) -> Table:
    view = Table(title=f"the loop, end to end, in {total_seconds:.1f} s", title_justify="left")
    for column in ("step", "what happened", "outcome", "seconds"):
        view.add_column(column, justify="right" if column == "seconds" else "left")
    for step in result.steps:
        view.add_row(str(step.number), escape(step.title), escape(step.outcome), f"{step.seconds:.1f}")
    return view


def run_demo(
    *,
    cli: TourCli,
    console: Console | None = None,
    template: Path | None = None,
    out_dir: Path = Path("build/demo"),
    announce: Callable[[str], None] | None = None,
) -> TourResult:
    """``make demo``: the template (``cdk.out`` or ``build/local.out`` when fresh, else synthesized into the latter),
    the local stack, the tour and the summary table; nothing is left running."""
    from serverless_mlops.local.environment import local_environment, local_template

    console = console or Console(highlight=False, soft_wrap=True)  # long S3 URIs stay on one line, copyable
    started = time.perf_counter()
    say = announce or (lambda text: console.print(text, highlight=False))
    document, assembly, stack_name = local_template(template, announce=say)
    with local_environment(document, assembly, stack_name=stack_name) as env:
        console.print(
            f"[bold]0. the stack, locally[/bold]: {stack_name} from {assembly.name}/ on a moto server at {env.info.endpoint_url};"
            f" HTTP API at {env.info.api_url}; {len(env.stack.created)} resources provisioned"
            f" ({time.perf_counter() - started:.1f} s)"
        )
        result = run_tour(env, cli=cli, console=console, out_dir=out_dir)
    total = time.perf_counter() - started
    console.print()
    console.print(summary_table(result, total))
    console.print(f"[green]done[/green]: the moto server and the HTTP API are stopped; the drift report is at {result.report_html}")
    console.print(  # mlops ui's default port; the tour's stack is gone, a kept one shows the same pages
        f"the console would show this: mlops local up, then mlops ui → http://127.0.0.1:8765/models/{DRIFTING_MODEL}"
        " (versions, alias history, drift and quality, retraining)"
    )
    return result
