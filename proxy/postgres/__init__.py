"""The PostgreSQL wire protocol: sans-I/O codec, listener, upstream login and relay."""
