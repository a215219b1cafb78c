#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Writes the seed corpus of the fuzz targets into fuzz/corpus/.

    /usr/bin/python3 fuzz/make-seeds.py

The seeds are committed; this script is how they were made, and remakes
them when an input format changes (it first removes the seeds it wrote,
the files named seed-*, and leaves any other file, such as a crash input
kept as a regression test, alone). It needs python3-gi for GLib.Variant.
The input formats are described at the top of each fuzz-*.c.
"""
import math
import os
import struct
import sys

from gi.repository import GLib

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def V(type_string, value):
    return GLib.Variant(type_string, value)


# fuzz-variant: "TYPE\0DATA", DATA the serialized value.
VARIANTS = {
    "bool": ("b", True),
    "byte": ("y", 255),
    "int16": ("n", -32768),
    "uint16": ("q", 65535),
    "int32": ("i", -2**31),
    "uint32": ("u", 2**32 - 1),
    "int64": ("x", -2**63),
    "uint64": ("t", 2**64 - 1),
    "handle": ("h", 3),
    "double": ("d", 1.5),
    "double-nan": ("d", math.nan),
    "double-negative-zero": ("d", -0.0),
    "double-inf": ("d", -math.inf),
    "string": ("s", "h\u00e9llo \U0001f600"),
    "string-empty": ("s", ""),
    "object-path": ("o", "/org/example/Object"),
    "signature": ("g", "a{sv}(ii)"),
    "bytestring": ("ay", b"\x00\x01\xfe\xff"),
    "bytestring-empty": ("ay", b""),
    "array-of-bytestrings": ("aay", [b"a", b"", b"bc"]),
    "array-int32": ("ai", [1, -2, 3]),
    "array-empty": ("as", []),
    "array-of-strings": ("as", ["a", "", "\u00e9"]),
    "array-of-doubles": ("ad", [0.0, -0.0, math.nan, 1e308]),
    "dict-sv": ("a{sv}", {"a": V("i", 1), "b": V("s", "x"), "c": V("ay", b"z")}),
    "dict-sv-nested": ("a{sv}", {"d": V("a{sv}", {"e": V("mi", None)})}),
    "dict-is": ("a{is}", {1: "one", -1: "minus one"}),
    "dict-bb": ("a{bb}", {True: False}),
    "dict-dd": ("a{dd}", {0.5: 1.0, math.inf: 2.0}),
    "dict-ys": ("a{ys}", {0: "", 255: "x"}),
    "dict-entry": ("{sv}", ("key", V("u", 7))),
    "maybe-nothing": ("mi", None),
    "maybe-just": ("ms", "x"),
    "maybe-maybe-just-nothing": ("mmi", GLib.Variant.new_maybe(None, GLib.Variant("mi", None))),
    "maybe-array": ("mai", [1, 2]),
    "array-of-maybes": ("ams", ["a", None, "b"]),
    "tuple-unit": ("()", ()),
    "tuple": ("(isd)", (1, "a", 2.5)),
    "tuple-nested": ("((yy)(ss)a(ii))", ((1, 2), ("a", "b"), [(3, 4)])),
    "variant-int": ("v", V("i", 5)),
    "variant-variant": ("v", V("v", V("s", "deep"))),
    "variant-maybe-nothing": ("v", V("mv", None)),
    "variant-dict-bool-keys": ("v", V("a{bs}", {True: "t"})),
    "array-of-variants": ("av", [V("i", 1), V("s", "a"), V("mi", None), V("b", True)]),
    "array-of-variants-none": ("av", [V("mv", None)]),
    "deep-arrays": ("aaaaaaaai", [[[[[[[[1]]]]]]]]),
    "deep-tuples": ("((((((((i))))))))", ((((((((1,),),),),),),),)),
}


def nested(depth, leaf):
    for _ in range(depth):
        leaf = [leaf]
    return leaf


# At and past the 64 levels of Python containers gab_variant_from_python()
# takes (the int inside the innermost list is no level).
VARIANTS["deep-beyond-limit"] = ("a" * 65 + "i", nested(65, 7))
VARIANTS["deep-at-limit"] = ("a" * 64 + "i", nested(64, 7))


def raw_variant_seeds():
    """Hand-made DATA that is not in normal form, or not even valid."""
    return {
        "untrusted-string-no-nul": b"s\x00abc",
        "untrusted-string-bad-utf8": b"s\x00\xff\xfe\x00",
        "untrusted-object-path": b"o\x00not a path\x00",
        "untrusted-signature": b"g\x00(((\x00",
        "untrusted-bool-2": b"b\x00\x02",
        "untrusted-array-offsets": b"as\x00ab\x00c\x00\x09\x01",
        "untrusted-dict-truncated": b"a{sv}\x00a\x00\x00\x00\x00",
        "untrusted-variant-bad-type": b"v\x00\x01\x02\x00zz",
        "untrusted-deep-variant": b"v\x00" + b"\x00v" * 40,
        "untrusted-empty-data": b"(iiii)\x00",
        "grammar-generated": bytes([0x0e, 0x13, 0x07, 0x0f, 0x11, 0x03, 0x01, 0x05, 0x00, 1, 2, 3, 4]),
        "grammar-no-nul": bytes([0x12, 0x02, 0x0d, 0x09]),
    }


# fuzz-error-to-python: SELECTOR CODE[4] [LENGTH DOMAIN] MESSAGE
def error_to_python_seeds():
    seeds = {}
    io_codes = {
        "failed": 0, "not-found": 1, "exists": 2, "is-directory": 3,
        "not-directory": 4, "not-empty": 5, "permission-denied": 14,
        "cancelled": 19, "timed-out": 24, "busy": 26, "would-block": 27,
        "connection-refused": 39, "broken-pipe": 44, "not-supported": 15,
    }
    for name, code in io_codes.items():
        seeds[f"io-{name}"] = bytes([0]) + struct.pack("<I", code) + f"io {name}".encode()
    file_codes = {"exist": 0, "noent": 4, "nxio": 6, "intr": 20, "failed": 24}
    for name, code in file_codes.items():
        seeds[f"file-{name}"] = bytes([1]) + struct.pack("<I", code) + f"file {name}".encode()
    for selector, name in [(3, "gab"), (4, "gab-python"), (5, "key-file"), (6, "convert"),
                           (7, "dbus"), (8, "resolver"), (9, "variant-parse")]:
        seeds[f"domain-{name}"] = bytes([selector]) + struct.pack("<I", 1) + b"a message"
    seeds["code-negative"] = bytes([0x85]) + struct.pack("<i", -5) + b"negative"
    seeds["code-max"] = bytes([0x80]) + struct.pack("<i", 2**31 - 1) + b"max"
    # LENGTH % 4 bytes, each an index into a small alphabet ("a-" ASCII,
    # then "\xff", "\xc3\xa9", ...).
    seeds["custom-domain"] = bytes([0x0f]) + struct.pack("<I", 3) + bytes([3, 0, 1, 7]) + b"custom"
    seeds["custom-domain-empty"] = bytes([0x0f]) + struct.pack("<I", 3) + bytes([0]) + b"m"
    seeds["custom-domain-not-utf8"] = bytes([0x0f]) + struct.pack("<I", 3) + bytes([2, 2, 6]) + b"m"
    seeds["custom-domain-utf8"] = bytes([0x0f]) + struct.pack("<I", 3) + bytes([2, 3, 4]) + b"m"
    seeds["message-not-utf8"] = bytes([0]) + struct.pack("<I", 1) + b"caf\xe9"
    seeds["message-empty-cancelled"] = bytes([0]) + struct.pack("<I", 19)
    seeds["message-unicode"] = bytes([5]) + struct.pack("<I", 2) + "\u00e9\U0001f600".encode()
    return seeds


# fuzz-error-from-python: CLASS NUMBER[4] FLAGS MESSAGE (see `classes` there).
N_CLASSES = 43
GLIB_ERROR_CLASSES = {26, 34, 35, 36, 37, 38, 42}


def error_from_python_seeds():
    seeds = {}
    for index in range(N_CLASSES):
        seeds[f"class-{index:02d}"] = bytes([index]) + struct.pack("<i", 2) + bytes([0]) + b"boom"
        seeds[f"class-{index:02d}-errno"] = bytes([index]) + struct.pack("<i", 2) + bytes([0x10]) + b"boom"
    for index in sorted(GLIB_ERROR_CLASSES):
        for flags in (1, 2, 3, 6, 0x0a):
            seeds[f"glib-{index:02d}-flags-{flags:02x}"] = (
                bytes([index]) + struct.pack("<i", 1) + bytes([flags]) + b"glib message")
    # Domain names (flags 3): two parts picked by the code's high byte.
    for high in (0x00, 0x01, 0x20, 0x45, 0x5c, 0xa3, 0x1b):
        seeds[f"glib-domain-{high:02x}"] = (
            bytes([26]) + struct.pack("<I", (high << 24) | 7) + bytes([3]) + b"named")
    seeds["oserror-errno-huge"] = bytes([10]) + struct.pack("<i", -7) + bytes([0x30]) + b"x"
    seeds["oserror-ecanceled"] = bytes([10]) + struct.pack("<i", 125) + bytes([0x10]) + b"x"
    seeds["message-surrogates"] = bytes([0]) + struct.pack("<i", 0) + bytes([0]) + b"\xff\x00\xed\xa0\x80"
    seeds["message-empty"] = bytes([25]) + struct.pack("<i", 0) + bytes([0])
    return seeds


def write(target, seeds):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.startswith("seed-"):
            os.unlink(os.path.join(directory, name))
    for name, data in seeds.items():
        with open(os.path.join(directory, "seed-" + name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds", file=sys.stderr)


def main():
    variant_seeds = {}
    for name, (type_string, value) in VARIANTS.items():
        variant = (value if isinstance(value, GLib.Variant) and value.get_type_string() == type_string
                   else V(type_string, value))
        assert variant.get_type_string() == type_string, name
        data = variant.get_data_as_bytes().get_data()
        variant_seeds[name] = type_string.encode() + b"\0" + data
    variant_seeds.update(raw_variant_seeds())
    write("fuzz-variant", variant_seeds)
    write("fuzz-error-to-python", error_to_python_seeds())
    write("fuzz-error-from-python", error_from_python_seeds())


if __name__ == "__main__":
    main()
