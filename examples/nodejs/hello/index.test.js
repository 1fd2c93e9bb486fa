"use strict";
const test = require("node:test");
const assert = require("node:assert");
const { handler } = require("./index.js");

test("echoes the event's data", async () => {
  for (const data of [{ name: "ferry" }, [1, 2], "text", null]) {
    assert.deepStrictEqual(await handler({ data }, {}), {
      message: "hello from nodejs",
      echo: data,
    });
  }
});

test("no data echoes null", async () => {
  assert.deepStrictEqual((await handler({}, {})).echo, null);
});
