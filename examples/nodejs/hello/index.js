// ferry's Node.js example: greet, and echo the data of the calling event.
"use strict";

exports.handler = async (event, context) => ({
  message: "hello from nodejs",
  echo: event.data === undefined ? null : event.data,
});
