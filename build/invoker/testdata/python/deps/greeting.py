"""Stands in for a dependency pip installed into <root>/deps."""

WORD = "hello from deps"
