"""The JSON API as an OpenAPI 3.1 document, served at ``GET /api/openapi.json``.

Written as data, next to the routes it describes: tests/test_openapi.py checks that every /api
route is in it and nothing else is, that it is valid OpenAPI, and fuzzes the app against it.
"""

from __future__ import annotations

from typing import Any

from app.input_guard import MAX_REQUEST_BYTES
from app.sansio.inputs import MAX_JSON_DEPTH

_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return {"$ref": "#/components/responses/Error", "description": description}


# Answers any request can get, whatever its operation: refused input, a body over the limit, a
# database or Redis that is away for a moment.
_ALWAYS = {
    "400": _error(
        "Bad input: a NUL byte or unpaired surrogate anywhere in the request, JSON nested deeper "
        f"than {MAX_JSON_DEPTH} levels, or a field that fails validation"
    ),
    "413": _error(f"The body is longer than {MAX_REQUEST_BYTES} bytes; it is not read"),
    "503": _error("The database or Redis is unavailable for a moment; retry"),
}
_AUTHENTICATED = {"401": _error("No valid bearer token (missing, expired or revoked)"), **_ALWAYS}
_BEARER = [{"bearer": []}]


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    secured = extra.get("security", _BEARER) == _BEARER
    return {
        "summary": summary,
        "responses": {**responses, **(_AUTHENTICATED if secured else _ALWAYS)},
        **extra,
    }


_TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
_NOT_FOUND = {"404": _error("No such task of this user's (another user's task is not found either)")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "running_task_id": {"type": ["string", "null"]}},
    },
    "User": {
        "type": "object",
        "required": ["id", "username"],
        "properties": {"id": {"type": "integer"}, "username": {"type": "string"}},
    },
    "NewUser": {
        "type": "object",
        "required": ["username", "email", "password"],
        "properties": {
            "username": {"type": "string", "maxLength": 64},
            "email": {"type": "string", "maxLength": 120},
            "password": {"type": "string", "minLength": 8, "maxLength": 128},
        },
    },
    "Token": {
        "type": "object",
        "required": ["token", "expires_at"],
        "properties": {"token": {"type": "string"}, "expires_at": {"type": "string", "format": "date-time"}},
    },
    "Post": {
        "type": "object",
        "required": ["id", "body", "created_at", "author"],
        "properties": {
            "id": {"type": "integer"},
            "body": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "author": {"type": "integer"},
            "username": {"type": "string"},
        },
    },
    "NewPost": {"type": "object", "required": ["body"], "properties": {"body": {"type": "string"}}},
    "Param": {
        "type": "object",
        "required": ["name", "type", "default", "minimum", "maximum"],
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["integer", "number", "array"]},
            "default": {},
            "minimum": {"type": ["number", "null"]},
            "maximum": {"type": ["number", "null"]},
            "help": {"type": ["string", "null"]},
        },
    },
    "TaskType": {
        "type": "object",
        "required": ["name", "title", "description", "params"],
        "properties": {
            "name": {"type": "string"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "params": {"type": "array", "items": _ref("Param")},
            "timeout": {"type": ["integer", "null"]},
            "max_attempts": {"type": "integer"},
            "concurrent_per_user": {"type": ["integer", "null"]},
        },
    },
    "NewTask": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "a task type's name (GET /api/task-types)"},
            "params": {"type": "object", "description": "that type's parameters; defaults for the rest"},
        },
    },
    "Task": {
        "type": "object",
        "required": ["id", "name", "params", "status", "progress", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "params": {"type": "object"},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "step": {"type": "integer"},
            "total": {"type": "integer"},
            "message": {"type": "string"},
            "result": {},
            "error": {"type": ["string", "null"]},
            "attempt": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "seq": {"type": ["integer", "null"]},
            "duration": {"type": ["number", "null"]},
            "has_result_file": {"type": "boolean"},
            "result_expires_at": _NULLABLE_TIME,
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "traceback": {"type": ["string", "null"]},
        },
    },
}

PATHS: dict[str, Any] = {
    "/openapi.json": {
        "get": _operation(
            "This document",
            {"200": _json({"type": "object"}, "The OpenAPI document")},
            security=[],
        )
    },
    "/users": {
        "post": _operation(
            "Register a user",
            {
                "201": _json(_ref("User"), "Registered; a link to confirm the address is mailed to it"),
                "409": _error("The username or e-mail address is already registered"),
                "429": _error("Too many accounts created from this address; retry later"),
            },
            security=[],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewUser")}}},
        )
    },
    "/confirmation": {
        "post": _operation(
            "Mail this user a new link to confirm their address",
            {
                "202": _json(
                    {
                        "type": "object",
                        "required": ["confirmation_sent"],
                        "properties": {"confirmation_sent": {"const": True}},
                    },
                    "Queued for the worker to send",
                ),
                "409": _error("The address is already confirmed"),
                "429": _error("A link was sent less than a minute ago"),
            },
        )
    },
    "/tokens": {
        "post": _operation(
            "Exchange a username and password (HTTP Basic) for a bearer token",
            {
                "201": _json(_ref("Token"), "A new token"),
                "401": _error("Wrong or missing credentials"),
                "429": _error("Too many attempts for this account or from this address; retry later"),
            },
            security=[{"basic": []}],
        ),
        "delete": _operation(
            "Revoke this request's token; its sockets are disconnected", {"204": {"description": "Revoked"}}
        ),
    },
    "/notifications": {
        "get": _operation(
            "The socket's events since a seq, for clients that cannot hold a socket",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["events", "last_seq"],
                        "properties": {
                            "events": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["event", "data"],
                                    "properties": {"event": {"type": "string"}, "data": {"type": "object"}},
                                },
                            },
                            "last_seq": {"type": "integer"},
                        },
                    },
                    "Events after `since`, or a resync and a snapshot",
                )
            },
            parameters=[{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
        )
    },
    "/posts": {
        "get": _operation(
            "This user's posts, newest first",
            {"200": _json({"type": "array", "items": _ref("Post")}, "Posts")},
        ),
        "post": _operation(
            "Write a post",
            {"201": _json(_ref("Post"), "Written")},
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewPost")}}},
        ),
    },
    "/search": {
        "get": _operation(
            "Full-text search over every user's posts",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["query", "limit", "offset", "results"],
                        "properties": {
                            "query": {"type": "string"},
                            "limit": {"type": "integer"},
                            "offset": {"type": "integer"},
                            "results": {"type": "array", "items": _ref("Post")},
                        },
                    },
                    "Matching posts",
                )
            },
            parameters=[
                {"name": "q", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                {
                    "name": "offset",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                },
            ],
        )
    },
    "/task-types": {
        "get": _operation(
            "The task types a user may start",
            {"200": _json({"type": "array", "items": _ref("TaskType")}, "Types")},
        )
    },
    "/tasks": {
        "get": _operation(
            "This user's recent tasks", {"200": _json({"type": "array", "items": _ref("Task")}, "Tasks")}
        ),
        "post": _operation(
            "Start a task",
            {
                "202": {
                    **_json(_ref("Task"), "Queued"),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "403": _error("Only an operator may do this (e.g. mail other users)"),
                "409": _error("This type runs one at a time per user and one is running"),
                "429": _error("Too many queued and running tasks, tasks started too fast, or too much mail"),
            },
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewTask")}}},
        ),
    },
    "/tasks/{task_id}": {
        "get": _operation(
            "One task, with its traceback if it failed",
            {"200": _json(_ref("Task"), "The task"), **_NOT_FOUND},
            parameters=[_TASK_ID],
        )
    },
    "/tasks/{task_id}/cancel": {
        "post": _operation(
            "Cancel a task",
            {
                "200": _json(_ref("Task"), "Cancelled"),
                "202": _json(_ref("Task"), "Asked to stop; it is running"),
                **_NOT_FOUND,
                "409": _error("The task has already finished"),
            },
            parameters=[_TASK_ID],
        )
    },
    "/tasks/{task_id}/result": {
        "get": _operation(
            "Download the task's result file",
            {
                "200": {"description": "The file", "content": {"*/*": {"schema": {}}}},
                **_NOT_FOUND,
                "410": _error("The result expired and was deleted"),
            },
            parameters=[_TASK_ID],
        )
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Microblog tasks API",
        "version": "1",
        "description": (
            'Background tasks with live progress. Every error is JSON `{"error": ...}`. '
            "Live events: Socket.IO at /socket.io (docs/protocol.md)."
        ),
    },
    "servers": [{"url": "/api"}],
    "security": _BEARER,
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "responses": {"Error": _json(_ref("Error"), "An error")},
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"},
        },
    },
}
