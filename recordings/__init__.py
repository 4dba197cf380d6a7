"""The session recording format: writer, reader, integrity, exports."""
