"""The ceiling for the serving benchmark: a bare endpoint that calls ``InferenceSession.run`` directly.

``python benchmarks/_bare.py PORT MODEL.onnx [starlette]`` serves ``POST /`` on 127.0.0.1:PORT with the same server
stack as ``mlops serve`` (uvicorn, httptools, uvloop): JSON ``{"instances": [{feature: value}]}`` → one float32
``[N, 1]`` array per ONNX input → ``session.run`` → JSON. No validation, no registry, no logging, no metrics, no
capture: what is left when everything a production handler does is taken away. As a minimal Starlette app (the
issue's reference ceiling; Starlette lives in the benchmark venv) or as a raw ASGI callable (the stack's own limit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def app_for(onnx_path: Path, starlette: bool = False) -> Any:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_path.read_bytes(), sess_options=options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    headers = [(b"content-type", b"application/json")]

    def predict(body: bytes) -> bytes:
        instances = json.loads(body)["instances"]
        feeds = {name: np.array([[row[name]] for row in instances], dtype=np.float32) for name in inputs}
        outputs = session.run(None, feeds)
        return json.dumps({"predictions": outputs[0].ravel().tolist(), "probabilities": outputs[1].tolist()}).encode()

    if starlette:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def endpoint(request: Request) -> Response:
            return Response(predict(await request.body()), media_type="application/json")

        return Starlette(routes=[Route("/", endpoint, methods=["POST"])])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = predict(b"".join(chunks))
        await send({"type": "http.response.start", "status": 200, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    import uvicorn

    port, onnx_path = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(
        app_for(onnx_path, starlette="starlette" in sys.argv[3:]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )


if __name__ == "__main__":
    if len(sys.argv) == 1:  # run by hand (make bench skips _*.py): this one only serves benchmarks/inference.py
        print("benchmarks/_bare.py: the bare endpoint benchmarks/inference.py starts; nothing to measure on its own")
    else:
        main()
