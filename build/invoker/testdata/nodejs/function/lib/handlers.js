// Handlers the invoker tests serve: each answers with what it was given.
"use strict";

const greeting = require("greeting"); // lives in <root>/node_modules: Node's own lookup finds it

// kindOf is the data as {kind, value}, so the test sees which type arrived.
function kindOf(data) {
  if (data === null) return { kind: "null", value: null };
  if (Buffer.isBuffer(data)) return { kind: "bytes", value: data.toString("hex") };
  if (Array.isArray(data)) return { kind: "array", value: data };
  return { kind: typeof data, value: data };
}

function echo(event, context) {
  return { event: { ...event, data: kindOf(event.data) }, context, greeting: greeting.word };
}

// handle echoes the event, or misbehaves as its type asks.
function handle(event, context) {
  switch (event.type) {
    case "test.fail":
      throw new Error(`boom: ${event.data}`);
    case "test.unserialisable":
      return { big: 10n };
    case "test.bytes":
      return Buffer.from([0, 0x72, 0x61, 0x77, 0xff]);
    case "test.sleep":
      console.error("sleeping"); // the test waits for this line
      return new Promise((resolve) => setTimeout(() => resolve(echo(event, context)), event.data * 1000));
    default:
      return echo(event, context);
  }
}

module.exports = { handle, echo };
