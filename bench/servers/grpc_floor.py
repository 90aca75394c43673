"""gRPC's floor: grpc.aio on uvloop, as kubeserve-server runs it, with a ModelInfer that does nothing.

It parses no message and answers the same prebuilt bytes every time, so its CPU per request is
what grpcio itself costs per unary call: no server built on grpc.aio can spend less. Serves until
killed; any HTTP GET on the second port answers 200, for the benchmark's readiness wait.

    python bench/servers/grpc_floor.py GRPC_PORT HTTP_PORT
"""

from __future__ import annotations

import asyncio
import sys

import grpc
import uvloop

from kubeserve_server.proto import grpc_predict_v2_pb2 as pb

ANSWER = pb.ModelInferResponse(model_name="iris").SerializeToString()


async def infer(request: bytes, context: object) -> bytes:
    return ANSWER


async def ready(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def main(grpc_port: int, http_port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    await server.start()
    async with await asyncio.start_server(ready, "127.0.0.1", http_port):
        await server.wait_for_termination()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
