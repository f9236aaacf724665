"""The API's JSON parser: a body nested deeper than Python's JSON decoder follows is malformed JSON (400)."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that a body nested too deeply to decode is a 400 like any other
    malformed JSON. DRF turns only a ValueError into a 400; the decoder raises RecursionError for
    `[[[[...]]]]` some thousand levels deep, which was a 500 (a few kilobytes from anyone)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
