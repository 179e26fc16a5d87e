"""Inference: the inference Lambda behind an HTTP API (payload 2.0), authorized on every route.

IAM (SigV4) by default, a JWT authorizer by config; never an open route. The function answers every path under the
API (``ANY /{proxy+}``) and routes itself (powertools' resolver), so new endpoints need no infra change. The API
calls the function's ``live`` alias, which carries the provisioned concurrency when the config asks for it.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.packaging import RETENTION, Layer, PythonFunction, StackBase
from infra.storage import LogsKey

SERVICE = "inference"
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "jwtSub": "$context.authorizer.claims.sub",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
    "authorizerError": "$context.authorizer.error",
}


class InferenceApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        base: StackBase,
        *,
        layer: Layer,
    ) -> None:
        super().__init__(scope, construct_id)
        deployment = base.deployment
        settings = deployment.config.inference
        self.handler = PythonFunction(
            self,
            "Handler",
            function="inference",
            description="serverless-mlops inference: ONNX predictions over HTTP, with data capture",
            layers=[layer],
            memory_mb=settings.memory_mb,
            timeout=cdk.Duration.seconds(settings.timeout_seconds),
            environment={
                **base.environment,
                "POWERTOOLS_SERVICE_NAME": SERVICE,
                "MLOPS_MODELS": ",".join(spec.name for spec in deployment.specs),
                "MLOPS_MAX_ROWS": str(settings.max_rows),
                "MLOPS_CAPTURE_SAMPLE": str(settings.capture_sample),
                "MLOPS_REFRESH_SECONDS": str(settings.refresh_seconds),
            },
            log_retention_days=deployment.config.log_retention_days,
            reserved_concurrency=settings.concurrency.reserved,
            logging=deployment.config.logging,
            snap_start=settings.snap_start,
        )
        function = self.handler.function
        # least privilege: read models and the registry, write captured requests and reported labels (POST
        # /v1/models/{name}/labels writes ground-truth/, issue 18); nothing else in the bucket
        self.handler.grant_objects(base.bucket, read=("artifacts",), put=("capture", "predictions", "ground-truth"))
        base.table.grant_read_data(function)

        provisioned = settings.concurrency.provisioned
        self.alias = lambda_.Alias(
            self,
            "Live",
            alias_name="live",
            version=function.current_version,
            provisioned_concurrent_executions=provisioned or None,
        )
        scaling = settings.concurrency.autoscaling
        if scaling is not None:
            # Application Auto Scaling's target tracking of LambdaProvisionedConcurrencyUtilization on the alias
            self.alias.add_auto_scaling(min_capacity=scaling.min, max_capacity=scaling.max).scale_on_utilization(
                utilization_target=scaling.utilization
            )

        auth = deployment.config.auth
        authorizer: apigw.IHttpRouteAuthorizer
        if auth.mode == "jwt":
            assert auth.issuer is not None  # the config guarantees it for mode jwt
            authorizer = authorizers.HttpJwtAuthorizer("Jwt", auth.issuer, jwt_audience=list(auth.audience))
        else:
            authorizer = authorizers.HttpIamAuthorizer()
        self.api = apigw.HttpApi(
            self,
            "Api",
            api_name=f"serverless-mlops-{deployment.stage}",  # the console lists APIs by name: dev and prod apart
            description=f"serverless-mlops {deployment.stage}: model inference",
            default_authorizer=authorizer,
            create_default_stage=False,
        )
        self.api.add_routes(
            path="/{proxy+}",
            methods=[apigw.HttpMethod.ANY],
            integration=integrations.HttpLambdaIntegration("Inference", self.alias),
        )
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=RETENTION[deployment.config.log_retention_days],
            removal_policy=cdk.RemovalPolicy.DESTROY,
            encryption_key=LogsKey.of(self),  # callers' IPs and identities
        )
        self.stage = self.api.add_stage(
            "DefaultStage",
            stage_name="$default",
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=settings.throttling.rate_limit, burst_limit=settings.throttling.burst_limit),
        )
        cfn_stage = self.stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))
        )

    @property
    def url(self) -> str:
        url = self.stage.url
        assert url is not None
        return url
