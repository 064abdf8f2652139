"""Standard-library docstrings for the built-in pydocs retrieval suite (harness/data/retrieval.py).

This file imports the standard library only and is run as a script in a fresh interpreter without
site-packages (`python -I -S stdlib_docstrings.py`, which prints JSON): what a standard-library
module holds then depends on the Python version alone, not on what a process has imported before
(torch, for one, registers objects with multiprocessing's modules). retrieval.py also imports its
text helpers.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import warnings
from collections.abc import Iterable
from typing import Any

_MODULE_NAMES = (
    "abc argparse array ast asyncio base64 bdb binascii bisect builtins bz2 calendar cmath cmd code codecs "
    "codeop collections collections.abc colorsys compileall concurrent.futures configparser contextlib "
    "contextvars copy copyreg csv ctypes ctypes.util dataclasses datetime decimal difflib dis doctest "
    "email.charset email.contentmanager email.feedparser email.generator email.header email.headerregistry "
    "email.iterators email.message email.mime.base email.mime.multipart email.parser email.policy email.utils "
    "encodings enum errno faulthandler filecmp fileinput fnmatch fractions ftplib functools gc getopt getpass "
    "gettext glob graphlib gzip hashlib heapq hmac html html.parser http http.client http.cookiejar "
    "http.cookies http.server imaplib importlib importlib.abc importlib.machinery importlib.metadata "
    "importlib.resources importlib.util inspect io ipaddress itertools json json.decoder json.encoder keyword "
    "linecache locale logging logging.config logging.handlers lzma mailbox marshal math mimetypes modulefinder "
    "multiprocessing multiprocessing.connection multiprocessing.context multiprocessing.managers "
    "multiprocessing.pool multiprocessing.process multiprocessing.queues multiprocessing.shared_memory "
    "multiprocessing.synchronize netrc numbers operator optparse os pathlib pdb pickle pickletools pkgutil "
    "platform plistlib poplib posixpath pprint profile pstats py_compile pyclbr pydoc queue quopri random re "
    "reprlib runpy sched secrets select selectors shelve shlex shutil signal smtplib socket socketserver "
    "sqlite3 ssl stat statistics string stringprep struct subprocess symtable sys sysconfig tabnanny tarfile "
    "tempfile textwrap threading time timeit token tokenize trace traceback tracemalloc types typing "
    "unicodedata unittest unittest.mock urllib.error urllib.parse urllib.request urllib.response "
    "urllib.robotparser uuid warnings wave weakref wsgiref.handlers wsgiref.headers wsgiref.simple_server "
    "wsgiref.util wsgiref.validate xml.dom xml.dom.expatbuilder xml.dom.minidom xml.dom.pulldom "
    "xml.etree.ElementPath xml.etree.ElementTree xml.sax xml.sax.handler xml.sax.saxutils xml.sax.xmlreader "
    "xmlrpc.client xmlrpc.server zipapp zipfile zipimport zlib zoneinfo"
)
#: standard-library modules whose docstrings feed the pydocs suite (fixed order; members are sorted)
STDLIB_MODULES = tuple(_MODULE_NAMES.split())

MAX_DOC_CHARS = 400
MIN_BODY_CHARS = 80
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_SENTENCE = re.compile(r"^(.+?[.!?])\s+(?=[A-Z(\"'`*])")


def collapse(text: str) -> str:
    """Whitespace runs (newlines included) become one space; ends are stripped."""
    return " ".join(text.split())


def cut_at_word(text: str, limit: int = MAX_DOC_CHARS) -> str:
    """`text` cut to at most `limit` characters at a word boundary (a single overlong word is cut hard).

    Example: cut_at_word("alpha beta gamma", 12) -> "alpha beta".
    """
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    space = head.rfind(" ")
    return (head[:space] if space > 0 else text[:limit]).rstrip()


def split_docstring(doc: str) -> tuple[str, str]:
    """(summary, body): the first sentence of the first paragraph, and everything after it."""
    paragraphs = [collapse(p) for p in inspect.cleandoc(doc).split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        return "", ""
    first = paragraphs[0]
    match = _SENTENCE.match(first)
    summary, rest = (match.group(1), first[match.end() :]) if match else (first, "")
    return summary, collapse(" ".join([rest, *paragraphs[1:]]))


def members(module_name: str, module: Any) -> Iterable[tuple[str, Any]]:
    """(qualified name, object) of the public routines and classes a module defines (itself or in one of its
    submodules, e.g. unittest.TestCase from unittest.case), then the public methods and properties of each class."""
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or not (inspect.isroutine(obj) or inspect.isclass(obj)):
            continue
        defined_in = str(getattr(obj, "__module__", None) or "")
        if defined_in != module_name and not defined_in.startswith(module_name + "."):
            continue
        yield f"{module_name}.{name}", obj
        if inspect.isclass(obj):
            for member_name, member in sorted(vars(obj).items()):
                if member_name.startswith("_"):
                    continue
                if isinstance(member, classmethod | staticmethod):
                    member = member.__func__
                if inspect.isroutine(member) or isinstance(member, property):
                    yield f"{module_name}.{name}.{member_name}", member


def extract() -> dict[str, list[Any]]:
    """Docstring entries usable as documents (name, summary, document, body), and the modules that could
    not be imported.

    An object reached under two names (a re-export) and a body already seen are kept once, first come.
    """
    entries: list[dict[str, str]] = []
    skipped: list[str] = []
    seen_objects: set[int] = set()
    seen_bodies: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated aliases (typing.io ...) warn when touched
        for module_name in STDLIB_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                skipped.append(module_name)
                continue
            for name, obj in members(module_name, module):
                doc = getattr(obj, "__doc__", None)
                if id(obj) in seen_objects or not isinstance(doc, str) or _ADDRESS.search(doc):
                    continue
                seen_objects.add(id(obj))
                summary, body = split_docstring(doc)
                if len(body) >= MIN_BODY_CHARS and body not in seen_bodies:
                    seen_bodies.add(body)
                    entries.append(
                        {"name": name, "summary": summary, "document": cut_at_word(f"{name}: {body}"), "body": body}
                    )
    return {"entries": entries, "skipped": skipped}


if __name__ == "__main__":
    json.dump(extract(), sys.stdout)
