"""ferry's Python example: greet, and echo the data of the calling event."""


def handle(event, context):
    """Answer every event with a greeting and the event's data."""
    return {"message": "hello from python", "echo": event.get("data")}
