"""A service that answers requests, and a client that calls it."""

import asyncio
import sys

import nats
from nats.errors import NoRespondersError


async def main(url: str) -> None:
    service = await nats.connect(url, name="upper-service")

    async def upper(msg):
        await msg.respond(msg.data.upper())

    # Members of one queue group share the requests between them.
    await service.subscribe("svc.upper", queue="workers", cb=upper)

    client = await nats.connect(url, name="client")
    for word in (b"hello", b"jetport"):
        reply = await client.request("svc.upper", word, timeout=2)
        print(f"{word.decode()} -> {reply.data.decode()}")
    try:
        await client.request("svc.missing", b"?", timeout=2)
    except NoRespondersError:
        print("svc.missing: no responders")
    await client.drain()
    await service.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"))
