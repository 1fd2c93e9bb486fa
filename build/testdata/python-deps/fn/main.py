from greet import greet


def handle(event, context):
    return {"message": greet(event["data"]["name"])}
