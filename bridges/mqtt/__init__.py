"""The MQTT door: MQTT 3.1.1 and 5 clients on the hub's subjects, streams and accounts."""
