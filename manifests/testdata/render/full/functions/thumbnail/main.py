def handle(event, context):
    return {"size": 128}
