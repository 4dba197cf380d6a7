"""The session recording format: writer, reader, integrity, exports.

Entry points: ``recordings.writer.RecordingWriter`` (the proxy's recorder),
``recordings.reader.RecordingReader`` (seek, replay, live tail, terminal frames),
``recordings.verify.verify``, ``recordings.keys`` (the gateway's Ed25519 recording key),
``recordings.export.*`` (jsonl, asciicast, csvfile, evidence) and ``recordings.retention.prune``.
The byte layout is described in ``recordings.layout``, the event kinds in ``recordings.events``.
This package never imports ``proxy`` or ``textual``.
"""
