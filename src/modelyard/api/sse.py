"""Server-sent events of the management API: one JSON object per `data:` line."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse


def event_stream(items: AsyncIterator[Any]) -> StreamingResponse:
    async def encoded() -> AsyncIterator[bytes]:
        async for item in items:
            yield f"data: {json.dumps(item)}\n\n".encode()

    return StreamingResponse(encoded(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
