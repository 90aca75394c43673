"""The limit: a bare ASGI handler that parses the same v2 JSON and calls the same `predict`.

No routing, no validation, no metrics: what is left is uvicorn, orjson, numpy and the model, so
its throughput bounds what any Python server on this stack can reach.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import joblib
import numpy as np
import orjson
import uvicorn

Message = MutableMapping[str, Any]
MODEL: Any = None


async def app(
    scope: Message, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # readiness, for the benchmark's wait
        body = b'{"ready": true}'
    else:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        tensor = orjson.loads(b"".join(chunks))["inputs"][0]
        features = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
        result = MODEL.predict(features)
        body = orjson.dumps(
            {
                "model_name": "iris",
                "outputs": [
                    {"name": "predict", "datatype": "INT64", "shape": list(result.shape), "data": result}
                ],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    model_path, port = sys.argv[1], int(sys.argv[2])
    MODEL = joblib.load(model_path)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )
