"""The trivial grpc.aio server the benchmarks compare against, run as its own process:

    python bench/baseline.py PORT

It reuses pausable's messages so both sides move the same bytes:
GetOperation is a no-op unary call; Watch opens a bare fan-out stream; Cancel
broadcasts one event, stamped with the time it was sent, to every stream,
carrying the request_id as its message so the caller can make it as large as
the daemon's events (a request_id starting with "last" ends the streams).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import grpc

from pausable.collector import settle_garbage_collector
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc


class Baseline(operation_pb2_grpc.OperationServiceServicer):
    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[pb.WatchResponse]] = set()
        self.seq = 0

    async def GetOperation(self, request: pb.GetOperationRequest, context: grpc.aio.ServicerContext) -> pb.GetOperationResponse:
        return pb.GetOperationResponse()

    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchResponse]:
        queue: asyncio.Queue[pb.WatchResponse] = asyncio.Queue()
        self.queues.add(queue)
        try:
            while True:
                message = await queue.get()
                yield message
                if message.event.type == pb.EVENT_TYPE_SUCCEEDED:
                    return
        finally:
            self.queues.discard(queue)

    async def Cancel(self, request: pb.CancelRequest, context: grpc.aio.ServicerContext) -> pb.CancelResponse:
        self.seq += 1
        last = request.request_id.startswith("last")
        event = pb.OperationEvent(
            seq=self.seq, type=pb.EVENT_TYPE_SUCCEEDED if last else pb.EVENT_TYPE_PROGRESS, message=request.request_id
        )
        event.time.FromNanoseconds(time.time_ns())
        message = pb.WatchResponse(event=event)
        for queue in self.queues:
            queue.put_nowait(message)
        return pb.CancelResponse()

    async def ListWorkflows(
        self, request: pb.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkflowsResponse:
        """How many streams are open, as the count of workflows (so the bench knows when all are subscribed)."""
        return pb.ListWorkflowsResponse(workflows=[pb.Workflow() for _ in self.queues])


async def main(port: int) -> None:
    server = grpc.aio.server()
    operation_pb2_grpc.add_OperationServiceServicer_to_server(Baseline(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    settle_garbage_collector()  # as the daemon does, so the fan-out ratio compares the code paths, not GC settings
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
