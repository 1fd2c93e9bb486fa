"use strict";

exports.word = "hello from node_modules";
