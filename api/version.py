"""The API's version, in one place: the OpenAPI document and the WebSocket's AsyncAPI document both state it."""

API_VERSION = "1"
