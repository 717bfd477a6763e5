"""Compressed bombs: small bodies that expand to tens of MB (gzip) or a GB (br), built without holding the expansion."""

import zlib

import brotli

_ITEM = b'{"role":"user","content":"' + b"a" * (1 << 20) + b'"},'


def gzip_json_bomb(megabytes: int = 60) -> bytes:
    """About 1 KB of gzip per MB of JSON: 60 MB of chat messages in about 60 KB (under the 64 KiB request cap)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"model":"gpt-4o-mini","messages":[')]
    parts += [packer.compress(_ITEM) for _ in range(megabytes)]
    parts += [packer.compress(b'{"role":"user","content":"end"}]}'), packer.flush()]
    return b"".join(parts)


def brotli_json_bomb(megabytes: int = 1024) -> bytes:
    """A GB of JSON in about 250 KB of br (under the 256 KiB response capture cap)."""
    packer = brotli.Compressor(quality=1)
    parts = [packer.process(b'{"id":"chatcmpl-bomb","object":"chat.completion","choices":[')]
    parts += [packer.process(_ITEM) for _ in range(megabytes)]
    parts += [packer.process(b"{}]}"), packer.finish()]
    return b"".join(parts)
