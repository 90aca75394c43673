"""Generated Open Inference Protocol (v2) gRPC messages.

The ``*_pb2.py``/``*_pb2.pyi`` files are generated from ``grpc_predict_v2.proto``; do not edit them.
Regenerate after changing the proto, with the dev venv's grpcio-tools (a test checks they are in sync)::

    cd runtime-images/python && ../../.venv/bin/python -m grpc_tools.protoc -I. --python_out=. \\
        --pyi_out=. kubeserve_server/proto/grpc_predict_v2.proto

The dev extra pins grpcio-tools to 1.81.1, the last whose protoc writes protobuf 6 gencode (6.33.5).
Protobuf runtimes of the gencode's major and the next one load it, so the server runs on protobuf
6.33.5+ and 7.x alike, and shares an environment with clients that hold protobuf below 7 (tritonclient's
gRPC client, KServe's SDK). Moving the pin to a protoc of protobuf 7 would cut those clients off.

The messages go into protobuf's default descriptor pool as package ``inference`` (the service's wire
name), as tritonclient's and KServe's generated copies do: the pool refuses a name twice, so none of
those clients imports into a process that has imported this module (tests/server runs them apart).
"""
