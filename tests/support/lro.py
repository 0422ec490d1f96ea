"""Reading what the google.longrunning service packs into an Operation."""

from __future__ import annotations

from google.longrunning import operations_proto_pb2 as lro
from google.protobuf import struct_pb2

from pausable.jsonvalue import from_value
from pausable.v1 import operation_pb2 as pb


def metadata(operation: lro.Operation) -> pb.Operation:
    message = pb.Operation()
    assert operation.metadata.Unpack(message), operation.metadata.type_url
    return message


def response(operation: lro.Operation) -> object:
    value = struct_pb2.Value()
    assert operation.response.Unpack(value), operation.response.type_url
    return from_value(value)
