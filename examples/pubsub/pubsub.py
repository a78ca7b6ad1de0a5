"""Publish a few messages and receive them on a wildcard subscription."""

import asyncio
import sys

import nats


async def main(url: str) -> None:
    nc = await nats.connect(url)
    sub = await nc.subscribe("sensors.*.temperature")
    for room, value in (("kitchen", 21.5), ("garage", 14.0), ("office", 22.75)):
        await nc.publish(f"sensors.{room}.temperature", str(value).encode())
    for _ in range(3):
        msg = await sub.next_msg(timeout=2)
        print(f"{msg.subject}: {msg.data.decode()}")
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "nats://127.0.0.1:4222"))
