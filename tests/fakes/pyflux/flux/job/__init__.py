"""Stand-in for ``flux.job``: only ``JobID`` (plus ``id_parse``/``id_encode``).

Like flux-core's ``JobID`` (an ``int`` subclass) it accepts an RFC 19 FLUID in
decimal, ``0x`` hex, dotted hex, ``job.`` KVS path or F58 (prefix ``ƒ`` or
``f``) form, and ``str()`` gives the F58 form.  The ``words`` encoding is not
implemented.
"""

from __future__ import annotations

import os

F58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
F58_PREFIXES = ("\u0192", "f")  # "ƒ", or "f" where the locale is not UTF-8


def _start_environ() -> dict[str, str]:
    """The environment the process started with: Python's locale coercion (PEP
    538) adds LC_CTYPE=C.UTF-8 to os.environ under LANG=C."""
    try:
        with open("/proc/self/environ", "rb") as fh:
            items = fh.read().split(b"\0")
    except OSError:
        return dict(os.environ)
    pairs = (item.partition(b"=") for item in items)
    env = {os.fsdecode(k): os.fsdecode(v) for k, sep, v in pairs if sep}
    if "FLUX_F58_FORCE_ASCII" in os.environ:  # set later by the program itself
        env["FLUX_F58_FORCE_ASCII"] = os.environ["FLUX_F58_FORCE_ASCII"]
    return env


def _utf8_locale() -> bool:
    """Like tests/fakes/flux (FACTS.md, /work/shared/flux/FACTS.md: ids print as
    "ƒ..." under a UTF-8 locale, "f..." under LANG=C or with FLUX_F58_FORCE_ASCII):
    the first set of LC_ALL, LC_CTYPE, LANG the process started with decides."""
    env = _start_environ()
    if "FLUX_F58_FORCE_ASCII" in env:
        return False
    for var in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(var)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


def id_parse(jobid_str: str) -> int:
    """Parse any supported job id encoding to an int (ValueError if invalid)."""
    s = str(jobid_str).strip()
    if not s:
        raise ValueError(f"invalid jobid: {jobid_str!r}")
    if s.isdigit():
        return int(s)
    if s.startswith("0x"):
        return int(s, 16)
    if s.startswith("job."):
        s = s[len("job."):]
    parts = s.split(".")
    if len(parts) == 4 and all(len(p) == 4 for p in parts):
        return int("".join(parts), 16)
    if s[0] in F58_PREFIXES and len(s) > 1:
        value = 0
        for ch in s[1:]:
            digit = F58_ALPHABET.find(ch)
            if digit < 0:
                raise ValueError(f"invalid jobid: {jobid_str!r}")
            value = value * 58 + digit
        return value
    raise ValueError(f"invalid jobid: {jobid_str!r}")


def id_encode(jobid: int, encoding: str = "f58") -> str:
    jobid = int(jobid)
    if encoding == "dec":
        return str(jobid)
    if encoding == "hex":
        return hex(jobid)
    if encoding in ("dothex", "kvs"):
        h = f"{jobid:016x}"
        dot = ".".join(h[i:i + 4] for i in range(0, 16, 4))
        return dot if encoding == "dothex" else "job." + dot
    if encoding == "f58":
        digits = ""
        while True:
            jobid, rem = divmod(jobid, 58)
            digits = F58_ALPHABET[rem] + digits
            if jobid == 0:
                break
        return ("\u0192" if _utf8_locale() else "f") + digits
    raise ValueError(f"unsupported jobid encoding: {encoding}")


class JobID(int):
    """A flux job id: an int that parses and prints flux's encodings."""

    orig_str: str

    def __new__(cls, value: int | str) -> JobID:
        jobid = value if isinstance(value, int) else id_parse(value)
        self = super().__new__(cls, jobid)
        self.orig_str = str(value)
        return self

    def encode(self, encoding: str = "dec") -> str:
        return id_encode(self, encoding)

    @property
    def dec(self) -> str:
        return self.encode("dec")

    @property
    def f58(self) -> str:
        return self.encode("f58")

    @property
    def hex(self) -> str:  # type: ignore[override]
        return self.encode("hex")

    @property
    def dothex(self) -> str:
        return self.encode("dothex")

    @property
    def kvs(self) -> str:
        return self.encode("kvs")

    @property
    def orig(self) -> str:
        return self.orig_str

    def __str__(self) -> str:
        return self.encode("f58")

    def __repr__(self) -> str:
        return f"JobID({int(self)})"


__all__ = ["JobID", "id_encode", "id_parse"]
