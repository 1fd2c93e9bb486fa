def handle(event, context):
    return event.get("data")
