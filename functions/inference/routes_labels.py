"""The ground-truth route: ``POST /v1/models/{name}/labels``, labels for earlier predictions named by their ids,
validated against the production version's task and classes and stored under ``ground-truth/`` (one call to
:func:`serverless_mlops.quality.label_rows.receive_labels`). Authorized like every route of the API."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.inference.error_map import responses
from functions.inference.telemetry import record_labels
from serverless_mlops.quality.label_rows import receive_labels
from serverless_mlops.serving.api_models import LabelsRequest, LabelsResponse
from serverless_mlops.serving.endpoint import EndpointProvider

LABELS_PATH = "/v1/models/{name}/labels"


def labels_router(endpoint: EndpointProvider) -> APIGatewayHttpRouter:
    """The labels route over ``endpoint`` (a provider, called on each request, so the endpoint is built lazily)."""
    router = APIGatewayHttpRouter()

    @router.post("/v1/models/<name>/labels", summary="Report labels", responses=responses(LabelsResponse, "labels stored"), tags=["v1"])
    def labels(name: str, body: LabelsRequest) -> LabelsResponse:
        receipt = receive_labels(endpoint(), name, body.labels)
        record_labels(name, receipt.received)
        return LabelsResponse(model=receipt.model, version=receipt.version, received=receipt.received, distinct_ids=receipt.distinct_ids)

    return router
