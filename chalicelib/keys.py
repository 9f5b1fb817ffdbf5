"""Where each object of an org lives in the store (DESIGN §3).

The org is checked here, before any key is built, so a malformed org name
can never reach the store as a path.
"""

import re

ORG_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
VERSION_DIGITS = 20


class InvalidOrg(ValueError):
    """The org name does not match ``^[A-Za-z0-9_-]{1,64}$``."""


def check_org(org: str) -> str:
    """Return ``org`` unchanged if it is a valid org name, else raise InvalidOrg."""
    if not isinstance(org, str) or not ORG_PATTERN.fullmatch(org):
        raise InvalidOrg(f"invalid org name: {org!r}")
    return org


def org_prefix(org: str) -> str:
    return f"orgs/{check_org(org)}/"


def log_prefix(org: str) -> str:
    return f"{org_prefix(org)}log/"


def log_key(org: str, version: int) -> str:
    if version < 1:
        raise ValueError(f"log versions start at 1, not {version}")
    return f"{log_prefix(org)}{version:0{VERSION_DIGITS}d}.json"


def version_of_log_key(key: str) -> int:
    """The version a log key names: ``orgs/a/log/00000000000000000042.json`` → 42."""
    name = key.rsplit("/", 1)[-1]
    return int(name.removesuffix(".json"))


def snapshot_prefix(org: str, schema_hash: str) -> str:
    return f"{org_prefix(org)}snapshots/{schema_hash}/"


def snapshot_key(org: str, schema_hash: str, version: int) -> str:
    return f"{snapshot_prefix(org, schema_hash)}{version:0{VERSION_DIGITS}d}.sqlite"


def version_of_snapshot_key(key: str) -> int:
    name = key.rsplit("/", 1)[-1]
    return int(name.removesuffix(".sqlite"))


def delta_prefix(org: str, schema_hash: str, base_version: int) -> str:
    """Where the deltas on the full snapshot of ``base_version`` live."""
    return f"{snapshot_prefix(org, schema_hash)}{base_version:0{VERSION_DIGITS}d}.deltas/"


def delta_key(org: str, schema_hash: str, base_version: int, version: int) -> str:
    return f"{delta_prefix(org, schema_hash, base_version)}{version:0{VERSION_DIGITS}d}.delta"


def version_of_delta_key(key: str) -> int:
    """The version a delta key names: ``.../00000000000000000007.deltas/00000000000000000042.delta`` → 42."""
    name = key.rsplit("/", 1)[-1]
    return int(name.removesuffix(".delta"))


def part_key(
    org: str, schema_hash: str, base_version: int, writer: str, index: int, extension: str
) -> str:
    """Part ``index`` (from 1; part 0 is in the snapshot object) of the full
    snapshot of ``base_version`` as the writer ``writer`` wrote it, named
    with its codec's ``extension`` (chalicelib.compression.EXTENSIONS)."""
    return (f"{snapshot_prefix(org, schema_hash)}{base_version:0{VERSION_DIGITS}d}.parts/"
            f"{writer}/{index:05d}.{extension}")


def lease_key(org: str) -> str:
    return f"{org_prefix(org)}lease.json"


def org_of_key(key: str) -> str | None:
    """The org a store key belongs to, or None if it is not an org key."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != "orgs":
        return None
    return parts[1] if ORG_PATTERN.fullmatch(parts[1]) else None


def pack_prefix(org: str) -> str:
    return f"{org_prefix(org)}packs/"


def pack_key(org: str, first: int, last: int) -> str:
    """A pack of commits ``first..last``, named last version first so that a
    listing after version v starts at the packs holding v."""
    if not 1 <= first <= last:
        raise ValueError(f"a pack holds versions first..last with 1 <= first <= last, not {first}..{last}")
    return f"{pack_prefix(org)}{last:0{VERSION_DIGITS}d}-{first:0{VERSION_DIGITS}d}.pack"


def range_of_pack_key(key: str) -> tuple[int, int] | None:
    """The versions ``(first, last)`` a pack key names, or None if it names no pack."""
    name = key.rsplit("/", 1)[-1]
    match = re.fullmatch(r"([0-9]{20})-([0-9]{20})\.pack", name)
    if match is None:
        return None
    last, first = int(match.group(1)), int(match.group(2))
    return (first, last) if 1 <= first <= last else None
