"""`edgekit demo`: the whole story on embedded defaults (amqtt broker, SQLite hub)."""
