"""Handlers the invoker tests serve: each answers with what it was given."""

import asyncio
import sys
import time

import greeting  # lives in <root>/deps: proves the invoker puts it on sys.path


def kind_of(data):
    """The data as {"kind", "value"}, so the test sees which Python type arrived."""
    if data is None:
        return {"kind": "null", "value": None}
    if isinstance(data, bytes):
        return {"kind": "bytes", "value": data.hex()}
    if isinstance(data, bool):
        return {"kind": "boolean", "value": data}
    if isinstance(data, (int, float)):
        return {"kind": "number", "value": data}
    if isinstance(data, str):
        return {"kind": "string", "value": data}
    if isinstance(data, list):
        return {"kind": "array", "value": data}
    return {"kind": "object", "value": data}


def echo(event, context):
    return {
        "event": dict(event, data=kind_of(event["data"])),
        "context": {
            "function_name": context.function_name,
            "timeout": context.timeout,
            "memory": context.memory,
        },
        "greeting": greeting.WORD,
    }


def handle(event, context):
    """Echo the event, or misbehave as its type asks."""
    kind = event["type"]
    if kind == "test.fail":
        raise RuntimeError("boom: %s" % event["data"])
    if kind == "test.unserialisable":
        return {"set": {1, 2}}
    if kind == "test.bytes":
        return b"\x00raw\xff"
    if kind == "test.sleep":
        print("sleeping", file=sys.stderr, flush=True)  # the test waits for this line
        time.sleep(event["data"])
    return echo(event, context)


async def handle_async(event, context):
    """Echo the event after giving the event loop a turn, or after data seconds for test.sleep."""
    if event["type"] == "test.sleep":
        print("sleeping", file=sys.stderr, flush=True)
        await asyncio.sleep(event["data"])
    await asyncio.sleep(0.01)
    return echo(event, context)
