exports.handler = async (event) => ({ full: event.data && event.data.full });
