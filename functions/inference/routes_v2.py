"""The Open Inference Protocol (KServe V2) routes: ``POST /v2/models/{name}[/versions/{v}]/infer``,
``GET /v2/models/{name}[/versions/{v}]``, ``GET /v2/models/{name}[/versions/{v}]/ready``, ``GET /v2/health/live``,
``GET /v2/health/ready`` and ``GET /v2``. Each route calls the endpoint once; tensors are the endpoint's business."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.inference.error_map import SERVICE_RETRY_AFTER, responses
from functions.inference.telemetry import record_served
from serverless_mlops.serving.api_models import InferRequest, InferResponse, Liveness, ModelMetadata, ModelReadiness, Readiness
from serverless_mlops.serving.endpoint import EndpointProvider
from serverless_mlops.serving.request_parsing import JSON, request_id, routing_key

API_VERSION = "1.0"


def _served(name: str, result: InferResponse) -> InferResponse:
    record_served(name, int(result.model_version), len(result.outputs[0].data) if result.outputs else 0)
    return result


def v2_router(endpoint: EndpointProvider) -> APIGatewayHttpRouter:
    """The V2 routes over ``endpoint`` (a provider, called on each request, so the endpoint is built lazily)."""
    router = APIGatewayHttpRouter()

    @router.post(
        "/v2/models/<name>/infer",
        summary="Infer (Open Inference Protocol)",
        responses=responses(InferResponse, "output tensors"),
        tags=["v2"],
    )
    def infer(name: str, body: InferRequest) -> InferResponse:
        event = router.current_event.raw_event
        return _served(name, endpoint().infer(name, body, request_id=request_id(event), routing_key=routing_key(event)))

    @router.post(
        "/v2/models/<name>/versions/<version>/infer",
        summary="Infer with one version",
        responses=responses(InferResponse, "output tensors"),
        tags=["v2"],
    )
    def infer_version(name: str, version: str, body: InferRequest) -> InferResponse:
        return _served(name, endpoint().infer(name, body, version=version, request_id=request_id(router.current_event.raw_event)))

    @router.get("/v2/models/<name>", summary="Model metadata", responses=responses(ModelMetadata, "metadata"), tags=["v2"])
    def model_metadata(name: str) -> ModelMetadata:
        return endpoint().metadata(name)

    @router.get(
        "/v2/models/<name>/versions/<version>",
        summary="Model version metadata",
        responses=responses(ModelMetadata, "metadata"),
        tags=["v2"],
    )
    def version_metadata(name: str, version: str) -> ModelMetadata:
        return endpoint().metadata(name, version=version)

    @router.get(
        "/v2/models/<name>/ready",
        summary="Model readiness (loads it)",
        responses=responses(ModelReadiness, "the model is loaded"),
        tags=["v2"],
    )
    def model_ready(name: str) -> ModelReadiness:
        return endpoint().model_ready(name)

    @router.get(
        "/v2/models/<name>/versions/<version>/ready",
        summary="Model version readiness",
        responses=responses(ModelReadiness, "the model is loaded"),
        tags=["v2"],
    )
    def version_ready(name: str, version: str) -> ModelReadiness:
        return endpoint().model_ready(name, version=version)

    @router.get("/v2/health/live", summary="Liveness", tags=["v2"])
    def live() -> Liveness:
        return Liveness(live=True)

    @router.get(
        "/v2/health/ready",
        summary="Readiness",
        responses={
            200: {"description": "ready", "content": {JSON: {"model": Readiness}}},
            503: {"description": "not ready (Retry-After)", "content": {JSON: {"model": Readiness}}},
        },
        tags=["v2"],
    )
    def ready() -> Response[Readiness]:
        readiness = endpoint().ready()
        if readiness.ready:
            return Response(status_code=200, content_type=JSON, body=readiness)
        return Response(status_code=503, content_type=JSON, body=readiness, headers={"Retry-After": str(SERVICE_RETRY_AFTER)})

    @router.get("/v2", summary="Server metadata", tags=["v2"])
    def server_metadata() -> dict[str, Any]:
        return {"name": "serverless-mlops", "version": API_VERSION, "extensions": []}

    return router
