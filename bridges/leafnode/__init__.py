"""Leafnode connections to nats-server clusters: the wire protocol (``codec``) and its
events (``events``)."""
