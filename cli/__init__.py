"""The ``microblog-tasks`` command: a client of the JSON API and the Socket.IO protocol (docs/protocol.md)."""
