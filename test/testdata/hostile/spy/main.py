"""The hostile function: runs every attempt with the targets it is sent."""

import attack


def handle(event, context):
    return attack.attempts(event.get("data") or {})
