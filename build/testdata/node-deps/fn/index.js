"use strict";
const greet = require("greet");

exports.handler = async (event) => ({ message: greet(event.data.name) });
