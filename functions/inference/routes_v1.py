"""The v1 routes: ``POST /v1/models/{name}/predict`` (``?version=`` or ``?alias=``), this project's own request shape
(``instances`` keyed by feature name, or ``inputs`` in signature order). Each route calls the endpoint once."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.inference.error_map import responses
from functions.inference.telemetry import record_served
from serverless_mlops.serving.api_models import PredictQuery, PredictRequest, PredictResponse
from serverless_mlops.serving.endpoint import EndpointProvider
from serverless_mlops.serving.request_parsing import predict_query, request_id, routing_key

PREDICT_PATH = "/v1/models/{name}/predict"


def v1_router(endpoint: EndpointProvider) -> APIGatewayHttpRouter:
    """The v1 routes over ``endpoint`` (a provider, called on each request, so the endpoint is built lazily)."""
    router = APIGatewayHttpRouter()

    @router.post("/v1/models/<name>/predict", summary="Predict", responses=responses(PredictResponse, "predictions"), tags=["v1"])
    def predict(name: str, body: PredictRequest) -> PredictResponse:
        event = router.current_event.raw_event
        query = predict_query(event.get("queryStringParameters"), event.get("rawQueryString"))
        result = endpoint().predict(
            name, body, version=query.version, alias=query.alias, request_id=request_id(event), routing_key=routing_key(event)
        )
        record_served(name, result.version, len(result.predictions))
        return result

    return router


def document_v1(document: dict[str, Any]) -> None:
    """Declare :class:`PredictQuery`'s fields as the predict route's query parameters in the OpenAPI ``document``
    (the route reads them itself, see :func:`serverless_mlops.serving.request_parsing.predict_query`)."""
    schema = PredictQuery.model_json_schema()
    required = set(schema.get("required", ()))
    operation = document["paths"][PREDICT_PATH]["post"]
    operation.setdefault("parameters", []).extend(
        {"description": field.get("description"), "required": name in required, "schema": field, "name": name, "in": "query"}
        for name, field in schema["properties"].items()
    )
