"""Clients nobody here wrote, each run in a child process of its own, printing what they were answered.

tritonclient's gRPC client, KServe's SDK and the server each build their own generated copy of the
`inference` protobuf package into protobuf's default descriptor pool, which refuses a name twice: no
two of them import in one process, nor into the test process, which holds the server's copy.
test_clients.py runs ``python -m tests.server.foreign_clients CLIENT`` with the server's addresses and
rows on stdin, and asserts on the JSON printed: tensors as lists, refusals as the client reports them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

Answers = dict[str, Any]
MODEL = "iris"
BOTH = ["predict", "predict_proba"]
# Four strings where the model takes four numbers: a datatype the server refuses (numeric ones are cast).
WRONG_DATATYPE = np.array([[b"a", b"b", b"c", b"d"]], dtype=object)


def triton_grpc(http_url: str, grpc_target: str, rows: np.ndarray[Any, Any]) -> Answers:
    """NVIDIA's gRPC client: health, metadata, raw-tensor infer, requested outputs, three refusals."""
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    def tensor(values: np.ndarray[Any, Any], datatype: str = "FP64") -> triton.InferInput:
        infer_input = triton.InferInput("input-0", list(values.shape), datatype)
        infer_input.set_data_from_numpy(values)
        return infer_input

    def refusal(model: str, values: np.ndarray[Any, Any], datatype: str = "FP64") -> Answers:
        try:
            client.infer(model, [tensor(values, datatype)])
        except InferenceServerException as error:
            return {"status": error.status(), "message": error.message()}
        return {"status": "answered"}

    client = triton.InferenceServerClient(grpc_target)
    try:
        both = client.infer(
            MODEL,
            [tensor(rows)],
            outputs=[triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")],
            request_id="g-1",
        )
        only = client.infer(MODEL, [tensor(rows)], outputs=[triton.InferRequestedOutput("predict_proba")])
        return {
            "health": [client.is_server_live(), client.is_server_ready(), client.is_model_ready(MODEL)],
            "server_metadata": client.get_server_metadata(as_json=True),
            "model_metadata": client.get_model_metadata(MODEL, as_json=True),
            "infer": {
                "id": both.get_response(as_json=True)["id"],
                "predict": both.as_numpy("predict").tolist(),
                "predict_proba": both.as_numpy("predict_proba").tolist(),
            },
            "requested_only": {
                "names": [output["name"] for output in only.get_response(as_json=True)["outputs"]],
                "predict_proba": only.as_numpy("predict_proba").tolist(),
            },
            "wrong_datatype": refusal(MODEL, WRONG_DATATYPE, "BYTES"),
            "wrong_shape": refusal(MODEL, np.ones((2, 3))),
            "unknown_model": refusal("rose", np.ones((1, 4))),
        }
    finally:
        client.close()


async def kserve(http_url: str, grpc_target: str, rows: np.ndarray[Any, Any]) -> Answers:
    """KServe's SDK: its REST client in v1 and v2 (JSON and binary tensors) and its gRPC client."""
    import grpc
    import httpx
    from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import InferResponse, RequestedOutput

    def request(
        values: np.ndarray[Any, Any],
        binary: bool = False,
        datatype: str = "FP64",
        model: str = MODEL,
        outputs: list[str] | None = None,
    ) -> InferRequest:
        infer_input = InferInput("input-0", list(values.shape), datatype)
        infer_input.set_data_from_numpy(values, binary_data=binary)
        requested = [RequestedOutput(name) for name in outputs] if outputs else None
        return InferRequest(model, [infer_input], request_id="k-1", request_outputs=requested)

    def tensors(response: InferResponse) -> Answers:
        return {output.name: output.as_numpy().tolist() for output in response.outputs}

    async def refusal(call: Awaitable[object]) -> Answers:
        try:
            await call
        except httpx.HTTPStatusError as error:
            return {"status": error.response.status_code, "message": str(error)}
        except grpc.RpcError as error:
            return {"status": error.code().name, "message": error.details()}
        return {"status": "answered"}

    v2 = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=10))
    v1 = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=10))
    over_grpc = InferenceGRPCClient(grpc_target, timeout=10, retries=0)
    try:
        answers: Answers = {"rest_v2": {}, "rest_v1": {}, "grpc": {}}
        for binary in (False, True):
            answered = await v2.infer(http_url, request(rows, binary, outputs=BOTH), model_name=MODEL)
            answers["rest_v2"]["binary" if binary else "json"] = {"id": answered.id, **tensors(answered)}
        only = await v2.infer(http_url, request(rows, outputs=["predict_proba"]), model_name=MODEL)
        answers["rest_v2"] |= {
            "health": [
                await v2.is_server_live(http_url),
                await v2.is_server_ready(http_url),
                await v2.is_model_ready(http_url, MODEL),
            ],
            "requested_only": tensors(only),
            "wrong_datatype": await refusal(
                v2.infer(http_url, request(WRONG_DATATYPE, datatype="BYTES"), model_name=MODEL)
            ),
            "wrong_shape": await refusal(v2.infer(http_url, request(np.ones((2, 3))), model_name=MODEL)),
            "unknown_model": await refusal(
                v2.infer(http_url, request(np.ones((1, 4)), model="rose"), model_name="rose")
            ),
        }
        v1_body = {"instances": rows.tolist()}
        answers["rest_v1"] = {
            "health": [await v1.is_server_live(http_url), await v1.is_model_ready(http_url, MODEL)],
            "predict": await v1.infer(http_url, v1_body, model_name=MODEL),
            "wrong_shape": await refusal(
                v1.infer(http_url, {"instances": np.ones((2, 3)).tolist()}, model_name=MODEL)
            ),
            "unknown_model": await refusal(v1.infer(http_url, v1_body, model_name="rose")),
        }
        answered = await over_grpc.infer(request(rows, outputs=BOTH))
        answers["grpc"] = {
            "health": [
                await over_grpc.is_server_live(),
                await over_grpc.is_server_ready(),
                await over_grpc.is_model_ready(MODEL),
            ],
            "infer": {"id": answered.id, **tensors(answered)},
            "requested_only": tensors(await over_grpc.infer(request(rows, outputs=["predict_proba"]))),
            "wrong_datatype": await refusal(over_grpc.infer(request(WRONG_DATATYPE, datatype="BYTES"))),
            "wrong_shape": await refusal(over_grpc.infer(request(np.ones((2, 3))))),
            "unknown_model": await refusal(over_grpc.infer(request(np.ones((1, 4)), model="rose"))),
        }
        return answers
    finally:
        await v2.close()
        await v1.close()
        await over_grpc.close()


CLIENTS: dict[str, Callable[[str, str, np.ndarray[Any, Any]], Answers]] = {
    "triton-grpc": triton_grpc,
    "kserve": lambda http_url, grpc_target, rows: asyncio.run(kserve(http_url, grpc_target, rows)),
}


def main() -> None:
    """Read {"http_url", "grpc_target", "rows"} from stdin; print the named client's answers."""
    given = json.load(sys.stdin)
    client = CLIENTS[sys.argv[1]]
    answers = client(given["http_url"], given["grpc_target"], np.array(given["rows"], dtype=np.float64))
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
