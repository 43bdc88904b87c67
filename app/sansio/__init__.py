"""Pure logic: no Flask globals, no I/O, so it is tested without an app or a server."""
