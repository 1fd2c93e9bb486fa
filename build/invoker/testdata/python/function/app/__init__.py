"""A package, so that the tests load a handler by a dotted module path (app.handlers.handle)."""
