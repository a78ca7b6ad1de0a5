"""The WebSocket door: NATS (and other registered protocols) over RFC 6455."""
