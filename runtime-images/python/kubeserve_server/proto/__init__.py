"""Generated Open Inference Protocol (v2) gRPC messages.

The ``*_pb2.py``/``*_pb2.pyi`` files are generated from ``grpc_predict_v2.proto``; do not edit them.
Regenerate after changing the proto (a test checks they are in sync)::

    cd runtime-images/python && python -m grpc_tools.protoc -I. --python_out=. --pyi_out=. \\
        kubeserve_server/proto/grpc_predict_v2.proto
"""
