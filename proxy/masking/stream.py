"""Line-buffered masking of byte streams (SSH output, COPY), so a value split across packets is caught."""

# Output is cut into segments by content alone: each line, and a line longer than `max_line` into pieces of
# `max_line` bytes from its start (moved back to a UTF-8 character boundary). Each segment is masked as a
# whole, so the output does not depend on how the input was split into `feed` calls. No pattern but a private-
# key block crosses a newline; a block is tracked line by line: the line that opens it is masked from the
# BEGIN marker on, every line after it is replaced by "[SECRET]" until the END marker.
#
# Seam risk: an entity that straddles the cut inside a line longer than `max_line` is seen in two halves and
# may be missed; so may one split by a `flush()` an interactive relay makes when the upstream goes quiet (it
# must, or a prompt without a newline would never be shown).

from __future__ import annotations

from proxy.masking.entities import SECRET, mask_token
from proxy.masking.masker import Counts, Masker, merge_counts
from proxy.masking.patterns import PRIVATE_KEY_BEGIN_BYTES, PRIVATE_KEY_END_BYTES

DEFAULT_MAX_LINE = 64 * 1024
_MIN_MAX_LINE = 16
_BEGIN_MARKER = b"-----BEGIN"


class StreamMasker:
    """Masks one direction of one stream. Not thread-safe; one per channel."""

    def __init__(self, masker: Masker, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < _MIN_MAX_LINE:
            raise ValueError(f"max_line must be at least {_MIN_MAX_LINE} bytes")
        self._masker = masker
        self._max_line = max_line
        self._track_private_keys = SECRET in masker.entities
        self._held = bytearray()
        self._in_private_key = False
        self._secret_token = mask_token(SECRET).encode()

    @property
    def held(self) -> int:
        """Bytes held back waiting for the end of their line."""
        return len(self._held)

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[bytes, Counts]:
        """Take more stream bytes; return the masked complete lines (and full `max_line` pieces), holding the
        rest."""
        if not self._masker.enabled:
            return bytes(data), {}
        self._held += data
        return self._drain(final=False)

    def flush(self) -> tuple[bytes, Counts]:
        """Return whatever is held, masked."""
        if not self._held:
            return b"", {}
        return self._drain(final=True)

    # --- segmentation ---------------------------------------------------------------------------------------

    def _drain(self, final: bool) -> tuple[bytes, Counts]:
        held = self._held
        last_newline = held.rfind(b"\n")
        complete_end = last_newline + 1
        out: list[bytes] = []
        counts: Counts = {}
        if complete_end:
            region = bytes(held[:complete_end])
            if self._fast_path_ok(region):
                result = self._masker.mask_bytes(region)
                if result is None:
                    out.append(region)
                else:
                    out.append(result[0])
                    merge_counts(counts, result[1])
            else:
                self._mask_segments(region, out, counts, final=True)
        tail = bytes(held[complete_end:])
        consumed = complete_end + self._mask_segments(tail, out, counts, final=final)
        del held[:consumed]
        return b"".join(out), counts

    def _fast_path_ok(self, region: bytes) -> bool:
        """True when the complete lines can be masked in one call: no private-key state to track and no line
        that must be cut."""
        if self._in_private_key or (self._track_private_keys and _BEGIN_MARKER in region):
            return False
        if len(region) <= self._max_line:
            return True
        return max(map(len, region.split(b"\n"))) < self._max_line

    def _mask_segments(self, data: bytes, out: list[bytes], counts: Counts, final: bool) -> int:
        """Mask `data` segment by segment; return how many bytes were consumed. Without `final`, a trailing
        piece
        no longer than `max_line` and without a newline is left for later."""
        position = 0
        size = len(data)
        while position < size:
            newline = data.find(b"\n", position)
            line_end = newline + 1 if newline != -1 else size
            if line_end - position > self._max_line:
                end = _cut(data, position, self._max_line)
            elif newline != -1 or final:
                end = line_end
            else:
                break
            out.append(self._mask_segment(data[position:end], counts))
            position = end
        return position

    def _mask_segment(self, segment: bytes, counts: Counts) -> bytes:
        newline = b"\n" if segment.endswith(b"\n") else b""
        content = segment[:-1] if newline else segment
        if self._in_private_key:
            end = PRIVATE_KEY_END_BYTES.search(content)
            if end is None:
                return (self._secret_token if content else b"") + newline
            self._in_private_key = False
            return self._secret_token + self._mask_plain(content[end.end() :], counts) + newline
        return self._mask_plain(content, counts) + newline

    def _mask_plain(self, content: bytes, counts: Counts) -> bytes:
        result = self._masker.mask_bytes(content)
        if self._track_private_keys and _BEGIN_MARKER in content:
            begins = list(PRIVATE_KEY_BEGIN_BYTES.finditer(content))
            if begins and PRIVATE_KEY_END_BYTES.search(content, begins[-1].end()) is None:
                self._in_private_key = True  # the block goes on past this line
        if result is None:
            return content
        merge_counts(counts, result[1])
        return result[0]


def _cut(data: bytes, start: int, max_line: int) -> int:
    """Where to cut a long line: `max_line` bytes on, moved back to the start of a UTF-8 character."""
    cut = start + max_line
    for back in range(4):
        if cut - back <= start:
            break
        if data[cut - back] & 0xC0 != 0x80:
            return cut - back
    return cut
